"""Object storage on 127.0.0.1 for the tests: gs:// for Beam and TensorFlow, s3:// for Beam.

GCS: the PyPI `gcp-storage-emulator` (in memory) serves the JSON API. Beam's GCS client
(google-cloud-storage) reaches it through `STORAGE_EMULATOR_HOST`; TensorFlow's built-in GCS
client has its endpoints hard-coded (https://www.googleapis.com, https://storage.googleapis.com)
but honours `HTTPS_PROXY` and `CURL_CA_BUNDLE`, so a small CONNECT proxy here terminates TLS
with a certificate made at start for those names and forwards each request to the emulator.
Credentials go the real way too: google-auth reads an `authorized_user` file (holding a token
that does not expire, so nothing dials Google's token endpoint), TensorFlow its test token.

What this fixture mends in the emulator (each seen with Beam 2.77 / TF 2.21 clients):
- it handled one request at a time on one connection: now threaded, with one lock around
  its (not thread-safe) store;
- an upload with an empty body crashed its handler: the body is read as b"";
- it never answers `Expect: 100-continue` (curl then waits 1 s per upload): the proxy answers
  it, and forwards bodies de-chunked with a Content-Length;
- upload `Location` URLs are built from the Host header: the proxy sends the emulator's own
  host, and rewrites those URLs back to the public https name for TensorFlow.
It also answers 403 for buckets named by `deny()`, as GCS does without IAM permission.

S3: `moto`'s ThreadedMotoServer, reached by Beam's S3 filesystem through boto3's
`AWS_ENDPOINT_URL` (or Beam's `--s3_endpoint_url`). TensorFlow has no s3:// filesystem.

    python -m tests.objectstore      # serve both until Ctrl-C, printing the environment to use
"""

from __future__ import annotations

import datetime
import functools
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import tempfile
import threading
import urllib.parse

GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")


def _self_signed_certificate(folder: str) -> tuple[str, str]:
    """A certificate (its own CA) for the Google API host names; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowerpipe test GCS")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in GOOGLE_HOSTS]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def _read_body(rfile, headers) -> bytes:
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
            if not size:
                while rfile.readline().strip():  # trailers
                    pass
                return body
            body += rfile.read(size)
            rfile.readline()
    return rfile.read(int(headers.get("Content-Length") or 0))


class _EmulatorHandler(http.server.BaseHTTPRequestHandler):
    """The emulator's own handler behind a lock, and 403 for denied buckets."""

    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def __init__(self, owner: GcsServer, *args):
        self.owner = owner
        self.storage = owner.storage  # what the emulator's Router reads
        super().__init__(*args)

    def _dispatch(self, method: str) -> None:
        from gcp_storage_emulator import server as emu

        bucket = _bucket_of(urllib.parse.urlsplit(self.path).path)
        if bucket in self.owner.denied:
            _read_body(self.rfile, self.headers)
            return self._json(
                403,
                {
                    "error": {
                        "code": 403,
                        "message": f"test@example.com does not have storage "
                        f"access to the Google Cloud Storage bucket {bucket}. Permission "
                        "'storage.objects.get' denied on resource (or it may not exist).",
                    }
                },
            )
        with self.owner.lock:
            emu.Router(self).handle(method)

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def log_message(self, *args):
        pass


def _bucket_of(path: str) -> str:
    m = re.search(r"/b/([^/?]+)", path) or re.match(r"^/([^/?]+)/", path)
    return urllib.parse.unquote(m.group(1)) if m else ""


def _patch_emulator() -> None:
    """An upload with an empty body: the emulator reads None and crashes; give it b""."""
    from gcp_storage_emulator import server as emu

    if getattr(emu, "_flowerpipe_patched", False):
        return
    original = emu._read_data

    def read_data(handler, query):
        data = original(handler, query)
        if data is None and ("uploadType" in query or "upload_id" in query):
            return b""
        return data

    emu._read_data = read_data
    emu._flowerpipe_patched = True


class _ProxyHandler(socketserver.StreamRequestHandler):
    """CONNECT www.googleapis.com:443 -> TLS with our certificate -> HTTP requests forwarded to the emulator."""

    disable_nagle_algorithm = True

    def handle(self):
        owner: GcsServer = self.server.owner
        line = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline().strip():
            pass
        if len(line) < 2 or line[0] != "CONNECT" or line[1].split(":")[0] not in GOOGLE_HOSTS:
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        public = line[1].split(":")[0]
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with owner.tls.wrap_socket(self.connection, server_side=True) as tls:
            rfile, wfile = tls.makefile("rb"), tls.makefile("wb")
            while self._forward_one(rfile, wfile, public, owner.port):
                pass

    @staticmethod
    def _forward_one(rfile, wfile, public: str, port: int) -> bool:
        request_line = rfile.readline()
        if not request_line.strip():
            return False
        method, target, _ = request_line.decode("latin-1").split(" ", 2)
        headers = http.client.parse_headers(rfile)
        if headers.get("Expect", "").lower() == "100-continue":
            wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            wfile.flush()
        body = _read_body(rfile, headers)
        forward = {
            k: v
            for k, v in headers.items()
            if k.lower()
            not in ("host", "expect", "transfer-encoding", "content-length", "connection", "proxy-connection")
        }
        forward["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, target, body=body, headers=forward)
            resp = conn.getresponse()
            data = resp.read()
            out = [f"HTTP/1.1 {resp.status} {resp.reason}\r\n"]
            local = f"http://127.0.0.1:{port}"
            for k, v in resp.getheaders():
                if k.lower() in ("content-length", "connection", "transfer-encoding"):
                    continue
                out.append(f"{k}: {v.replace(local, 'https://' + public)}\r\n")
            out.append(f"Content-Length: {len(data)}\r\n\r\n")
        finally:
            conn.close()
        wfile.write("".join(out).encode("latin-1") + data)
        wfile.flush()
        return True


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class GcsServer:
    """The GCS emulator and the TLS proxy TensorFlow needs, on free ports of 127.0.0.1."""

    def __init__(self, folder: str | None = None):
        from gcp_storage_emulator.storage import Storage

        _patch_emulator()
        self.folder = folder or tempfile.mkdtemp(prefix="gcs-")
        self.storage = Storage(use_memory_fs=True)
        self.lock = threading.Lock()
        self.denied: set[str] = set()
        self._http = _ThreadingServer(("127.0.0.1", 0), functools.partial(_EmulatorHandler, self))
        self.port = self._http.server_address[1]
        self.cert, key = _self_signed_certificate(self.folder)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(self.cert, key)
        self._proxy = _ThreadingTCPServer(("127.0.0.1", 0), _ProxyHandler)
        self._proxy.owner = self
        self.proxy_port = self._proxy.server_address[1]
        self.credentials = os.path.join(self.folder, "credentials.json")
        with open(self.credentials, "w") as f:
            json.dump(
                {
                    "type": "authorized_user",
                    "client_id": "test",
                    "client_secret": "test",
                    "refresh_token": "test",
                    "token": "test-token",
                    "expiry": "2099-01-01T00:00:00Z",
                },
                f,
            )
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self._http, self._proxy)]

    def start(self) -> GcsServer:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for s in (self._http, self._proxy):
            s.shutdown()
            s.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def create_bucket(self, name: str) -> None:
        from gcp_storage_emulator.handlers import buckets

        with self.lock:
            buckets.create_bucket(name, self.storage)

    def deny(self, bucket: str) -> None:
        """Every request on `bucket` answers 403 from now on."""
        self.denied.add(bucket)

    def env(self) -> dict[str, str]:
        """The environment under which Beam, google-auth and TensorFlow use this emulator."""
        no_proxy = "127.0.0.1,localhost"
        return {
            # Beam / google-cloud-storage
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.port}",
            "GOOGLE_APPLICATION_CREDENTIALS": self.credentials,
            "GOOGLE_CLOUD_PROJECT": "test-project",
            "NO_GCE_CHECK": "True",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            # TensorFlow's GCS client (libcurl)
            "HTTPS_PROXY": f"http://127.0.0.1:{self.proxy_port}",
            "https_proxy": f"http://127.0.0.1:{self.proxy_port}",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
            "CURL_CA_BUNDLE": self.cert,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test-token",
            "GCS_STAT_CACHE_MAX_AGE": "0",  # else TF reads a stale length after another writer replaced an object
            "GCS_RETRY_CONFIG_MAX_RETRIES": "2",
        }


class S3Server:
    """moto's S3 on a free port of 127.0.0.1, for Beam's S3 filesystem (boto3)."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self.port = _free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> S3Server:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", **self.client_kwargs()).create_bucket(Bucket=name)

    def client_kwargs(self) -> dict:
        return {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "region_name": "us-east-1",
        }

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    with GcsServer() as gcs, S3Server() as s3:
        for store in (gcs, s3):
            store.create_bucket("bucket")
        gcs.create_bucket("denied")
        gcs.deny("denied")
        for k, v in {**gcs.env(), **s3.env()}.items():
            print(f"export {k}={v}")
        print("# buckets gs://bucket, s3://bucket and gs://denied (403); Ctrl-C to stop", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
