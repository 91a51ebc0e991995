"""Files on any storage a user can name: a local path, gs://, s3:// (any Apache Beam filesystem).

Local paths go through `os` (appends, fsync, atomic rename). Every other scheme goes through
Beam's `FileSystems` (gs:// needs apache-beam[gcp], s3:// apache-beam[aws]), imported on the
first remote call, so a program that only touches local paths never imports Beam for it.
Beam's filesystems are the ones the Beam jobs' workers use, so the driver, the workers and
the trainer all read and write a bucket the same way.

Object stores are not disks, and the functions here say so: there are no folders (`makedirs`
does nothing, `isdir` means "some object lies under it"), no appends (see storage.jsonl), and a
rename is a copy then a delete. What they do promise: an object written with `write_bytes`
appears whole or not at all (an upload that dies leaves no object), as `write_bytes` promises
on a local disk with a temp file and a rename.

TensorFlow reads and writes its own files (checkpoints, SavedModels, TensorBoard logs, TFDS)
through its own file layer, which knows gs:// but not s3:// (TF 2.21); `check(...,
tensorflow=True)` refuses such a path before any work. Errors from a store become one
`StorageError` line naming the path and the cause (missing bucket, permission, unreachable).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from typing import IO

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# The extra that brings Beam's filesystem for a scheme (see setup.py).
EXTRAS = {"gs": "gcp", "s3": "aws"}
# Schemes TensorFlow 2.21 cannot open: no filesystem is built in, tensorflow-io's plugins do not load.
NOT_IN_TENSORFLOW = {"s3": "S3", "az": "Azure", "azfs": "Azure"}
TIMEOUT_ENV = "FLOWERPIPE_STORAGE_TIMEOUT"
DEFAULT_TIMEOUT = 60.0


def _pathlike(fn):
    """Lets a function take os.PathLike paths (pathlib, epath) as well as strings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*(os.fspath(a) if isinstance(a, os.PathLike) else a for a in args), **kwargs)

    return wrapper


class StorageError(OSError):
    """A path cannot be read or written: one line naming the path (or the flag and path), what was
    being done and the cause."""

    def __init__(self, path: str, cause: str, action: str = ""):
        super().__init__(f"{path}: " + (f"cannot {action}: " if action else "") + cause)
        self.path, self.cause, self.action = path, cause, action


# -- paths --------------------------------------------------------------------------------
@_pathlike
def scheme(path: str) -> str:
    """'gs', 's3', ... for a URL; '' for a local path."""
    m = _SCHEME.match(path)
    return m.group(1).lower() if m else ""


def is_local(path: str) -> bool:
    return not scheme(path)


@_pathlike
def join(base: str, *parts: str) -> str:
    return os.path.join(base, *parts) if is_local(base) else posixpath.join(base, *parts)


@_pathlike
def basename(path: str) -> str:
    return os.path.basename(path.rstrip("/"))


@_pathlike
def dirname(path: str) -> str:
    return os.path.dirname(path.rstrip("/"))


@_pathlike
def check(path: str, flag: str = "", *, tensorflow: bool = False) -> None:
    """Refuses, before any work, a path this program cannot use: an unknown scheme, a scheme whose
    filesystem is not installed, or (`tensorflow`) one that TensorFlow cannot open."""
    s = scheme(path)
    if not s:
        return
    name = f"{flag}={path}" if flag else path
    if tensorflow and s in NOT_IN_TENSORFLOW:
        raise StorageError(
            name,
            f"TensorFlow 2.21 has no {s}:// filesystem ({NOT_IN_TENSORFLOW[s]} support lived in "
            "tensorflow-io, whose plugins do not load on 2.21) and this program reads or writes that "
            "path through TensorFlow: use gs://, or mount the bucket (e.g. mountpoint-s3, s3fs) and "
            "give the mounted path",
        )
    _filesystem(path, name)


# -- the remote side: Beam's FileSystems ----------------------------------------------------
def configure(pipeline_args: list[str] | None = None) -> None:
    """Gives Beam's filesystems this program's pipeline options (--s3_endpoint_url, --project, ...),
    so the driver reaches the stores as its workers do. Without a call, the defaults (environment)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    FileSystems.set_options(PipelineOptions(pipeline_args or []))


def _beam():
    from apache_beam.io.filesystems import FileSystems

    beam_log = logging.getLogger("apache_beam")
    if beam_log.level == logging.NOTSET:  # its filesystems log every listing at INFO
        beam_log.setLevel(logging.WARNING)
    # Beam's S3 filesystem needs an options object. A Beam worker has its pipeline's already
    # (--s3_endpoint_url ...): only a process that set none gets the defaults.
    if FileSystems._pipeline_options is None:
        configure()
    return FileSystems


def _filesystem(path: str, name: str = ""):
    try:
        return _beam().get_filesystem(path)
    except ValueError:
        s = scheme(path)
        hint = f"install it with pip install '.[{EXTRAS[s]}]'" if s in EXTRAS else "use a local path, gs:// or s3://"
        raise StorageError(name or path, f"no filesystem for {s}:// is installed: {hint}") from None


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost useful exception: through Beam's BeamIOError and raise-from chains."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        details = getattr(exc, "exception_details", None)
        if isinstance(details, dict) and details:
            inner = next(iter(details.values()))
            if isinstance(inner, BaseException):
                exc = inner
                continue
        nxt = exc.__cause__ or (exc.__context__ if not exc.__suppress_context__ else None)
        if nxt is None:
            break
        exc = nxt
    return exc


def _status(exc: BaseException) -> int | None:
    """The HTTP status a client library's exception carries (google-api-core, google-resumable-media,
    botocore, Beam's S3 client), if any."""
    for value in (
        getattr(exc, "code", None),
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore.exceptions.ClientError
        value = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(value, int):
            return value
    return next((a for a in getattr(exc, "args", ()) if isinstance(a, int) and 400 <= a < 600), None)


def describe(exc: BaseException, path: str, action: str = "read") -> str:
    """One line on why a store refused `path`: missing bucket, permission, unreachable, or the error.

    A 404 from a listing or a write can only mean a missing bucket (a prefix that holds nothing
    lists empty; a write creates the object).
    """
    root = _root_cause(exc)
    status = _status(root)
    text = " ".join(str(getattr(root, "message", None) or root).split())  # google-api-core: without the URL
    bucket = path_bucket(path)
    if status == 403 or "AccessDenied" in text:
        return f"permission denied on bucket {bucket} (403): {text[:200]}"
    if "NoSuchBucket" in text or (status == 404 and action in ("list", "write")):
        return f"bucket {bucket} does not exist"
    if isinstance(root, (ConnectionError, TimeoutError)) or re.search(r"connection|timeout of|timed out", text, re.I):
        return f"cannot reach the storage service ({type(root).__name__}: {text[:200]})"
    return f"{type(root).__name__}: {text[:300]}"


@contextlib.contextmanager
def _remote(path: str, action: str) -> Iterator[None]:
    """Turns a client library's error into StorageError (one line), or FileNotFoundError for a
    missing object on a read, stat, rename, copy or delete."""
    try:
        yield
    except (StorageError, FileNotFoundError):
        raise
    except Exception as e:  # google.api_core, google-resumable-media, botocore, BeamIOError, ...
        root = _root_cause(e)
        if action not in ("list", "write") and (
            isinstance(root, FileNotFoundError) or (_status(root) == 404 and "NoSuchBucket" not in str(root))
        ):
            raise FileNotFoundError(errno.ENOENT, "no such object", path) from e
        cause = describe(e, path, action)
        raise StorageError(path, cause, "" if cause.endswith("does not exist") else action) from e


# -- reading ------------------------------------------------------------------------------
@_pathlike
def exists(path: str) -> bool:
    """A file (or a local folder) at `path`."""
    if is_local(path):
        return os.path.exists(path)
    with _remote(path, "check"):
        return _beam().exists(path)


@_pathlike
def isdir(path: str) -> bool:
    """A local folder, or a remote prefix with at least one object under it."""
    if is_local(path):
        return os.path.isdir(path)
    with _remote(path, "list"):
        return bool(_beam().match([_pattern(path.rstrip("/"), "**")], limits=[1])[0].metadata_list)


def _pattern(folder: str, glob: str) -> str:
    if re.search(r"[*?\[\]]", folder):
        raise StorageError(folder, "glob characters (* ? [ ]) in a bucket path are not supported")
    return f"{folder}/{glob}"


@_pathlike
def list_files(folder: str, folders: bool = False) -> list[str]:
    """Every file under `folder` (recursively) as a sorted '/'-separated path relative to it; [] if none.

    `folders`: the sub-folders too, each ending with '/' (on an object store: the prefixes that
    hold objects, and empty "folder/" placeholder objects, as consoles create them).
    """
    out = []
    if is_local(folder):
        for root, dirs, files in os.walk(folder):
            rel = os.path.relpath(root, folder)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            out += [prefix + f for f in files] + ([prefix + d + "/" for d in dirs] if folders else [])
        return sorted(out)
    prefix = folder.rstrip("/") + "/"
    with _remote(folder, "list"):
        found = _beam().match([_pattern(folder.rstrip("/"), "**")])[0].metadata_list
    for m in found:
        rel = m.path[len(prefix) :] if m.path.startswith(prefix) else ""
        if rel and not rel.endswith("/"):
            out.append(rel)
        if folders and rel:
            parts = rel.rstrip("/").split("/")
            out += ["/".join(parts[:i]) + "/" for i in range(1, len(parts) + (rel.endswith("/")))]
    return sorted(set(out))


@_pathlike
def listdir(folder: str) -> list[str]:
    """The names directly under `folder` (files and sub-folders), sorted."""
    if is_local(folder):
        return sorted(os.listdir(folder))
    return sorted({rel.split("/", 1)[0] for rel in list_files(folder, folders=True)})


@_pathlike
def glob(folder: str, pattern: str) -> list[str]:
    """Paths of the files directly in `folder` whose names match `pattern` (fnmatch), sorted; [] if none."""
    import fnmatch

    if is_local(folder):
        names = (
            [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))] if os.path.isdir(folder) else []
        )
    else:
        names = [rel for rel in list_files(folder) if "/" not in rel]
    return [join(folder, n) for n in sorted(names) if fnmatch.fnmatchcase(n, pattern)]


@_pathlike
def size(path: str) -> int:
    if is_local(path):
        return os.path.getsize(path)
    with _remote(path, "stat"):
        found = _beam().match([path])[0].metadata_list
    if not found:
        raise FileNotFoundError(errno.ENOENT, "no such object", path)
    return found[0].size_in_bytes


@_pathlike
def open_read(path: str) -> IO[bytes]:
    """A binary, seekable stream. FileNotFoundError if there is no such file."""
    if is_local(path):
        return open(path, "rb")
    from apache_beam.io.filesystem import CompressionTypes

    with _remote(path, "read"):
        return _beam().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


@_pathlike
def read_bytes(path: str) -> bytes:
    with open_read(path) as f, contextlib.nullcontext() if is_local(path) else _remote(path, "read"):
        return f.read()


@_pathlike
def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


@_pathlike
def read_json(path: str):
    return json.loads(read_text(path))


# -- writing ------------------------------------------------------------------------------
@_pathlike
def makedirs(path: str) -> None:
    """A local folder and its parents; nothing on an object store (it has no folders)."""
    if is_local(path):
        os.makedirs(path, exist_ok=True)


@_pathlike
def open_write(path: str) -> IO[bytes]:
    """A binary stream writing `path` (parent folders made). Not atomic on a local disk: write to a
    temp name and `rename` it; on an object store the object appears only when the stream closes."""
    if is_local(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")
    _filesystem(path)
    return _RemoteWriter(path)


class _RemoteWriter(io.RawIOBase):
    """Beam's upload stream, opened at the first write, with the store's errors as StorageError.

    Beam's S3 writer starts a multipart upload when opened and S3 refuses to complete one with
    no part ("MalformedXML"): Beam cannot write an empty file to S3. An empty file is therefore
    one plain PUT, through the boto3 client Beam's S3 filesystem configures.
    """

    def __init__(self, path: str):
        self._path, self._stream = path, None

    def writable(self):
        return True

    def _open(self):
        from apache_beam.io.filesystem import CompressionTypes

        return _beam().create(self._path, compression_type=CompressionTypes.UNCOMPRESSED)

    def write(self, data) -> int:
        with _remote(self._path, "write"):
            if self._stream is None:
                self._stream = self._open()
            self._stream.write(data)
        return len(data)

    def close(self):
        if self.closed:
            return
        try:
            with _remote(self._path, "write"):
                if self._stream is not None:
                    self._stream.close()
                elif scheme(self._path) == "s3":
                    from apache_beam.io.aws.clients.s3 import boto3_client
                    from apache_beam.io.aws.s3io import parse_s3_path

                    bucket, key = parse_s3_path(self._path)
                    boto3_client.Client(_beam()._pipeline_options).client.put_object(Bucket=bucket, Key=key, Body=b"")
                else:
                    self._open().close()
        finally:
            super().close()


@_pathlike
@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[IO[bytes]]:
    """A binary stream whose content appears at `path` whole when the block ends, never in part.

    Local: written to a unique temp name in the same folder, fsynced, renamed over `path` (parents
    made); an error in the block removes the temp file. Object store: the block writes to a spooled
    temp file (memory up to 32 MiB, then disk), uploaded when the block ends without error; an
    upload creates the object only when it completes. (Closing an upload stream after an error
    would complete it, and publish the part written so far.)
    """
    if not is_local(path):
        with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as spool:
            yield spool
            spool.seek(0)
            with open_write(path) as out:
                shutil.copyfileobj(spool, out, 8 * 1024 * 1024)
        return
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@_pathlike
def write_bytes(path: str, data: bytes) -> None:
    """Writes the whole file so that a reader (or a crash) sees the old content or the new, never part."""
    with atomic_write(path) as f:
        f.write(data)


@_pathlike
def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


@_pathlike
def write_json(path: str, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + "\n")


@_pathlike
def rename(src: str, dst: str) -> None:
    """Moves a file over `dst`. Local: atomic. Object store: a copy, then a delete of `src`."""
    if is_local(src) and is_local(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        os.replace(src, dst)
        return
    if scheme(src) != scheme(dst):
        copy(src, dst)
        delete(src)
        return
    with _remote(src, "rename"):
        _beam().rename([src], [dst])


@_pathlike
def copy(src: str, dst: str) -> None:
    if is_local(src) and is_local(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.copyfile(src, dst)
        return
    if scheme(src) != scheme(dst):  # across stores: through this process
        write_bytes(dst, read_bytes(src))
        return
    with _remote(src, "copy"):
        _beam().copy([src], [dst])


@_pathlike
def delete(path: str) -> None:
    """Deletes a file; nothing if there is none."""
    if is_local(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    try:
        with _remote(path, "delete"):
            _beam().delete([path])
    except FileNotFoundError:
        pass


@_pathlike
def rmtree(folder: str) -> None:
    """Deletes a folder and everything under it; nothing if there is none."""
    if is_local(folder):
        shutil.rmtree(folder, ignore_errors=True)
        return
    files = [join(folder, rel) for rel in list_files(folder)]
    for i in range(0, len(files), 1000):
        with _remote(folder, "delete"):
            _beam().delete(files[i : i + 1000])


# -- before any work ------------------------------------------------------------------------
@_pathlike
def preflight(path: str, flag: str = "", *, write: bool = False, timeout: float | None = None) -> None:
    """Proves, before any work, that a remote `path` answers: its bucket exists, it can be listed,
    and (`write`) a new object can be written there and deleted. Local paths: nothing to prove.

    The clients retry an unreachable store for minutes; after `timeout` seconds
    (FLOWERPIPE_STORAGE_TIMEOUT, default 60) this gives up, naming the last error they retried.
    The clients' own log lines (tracebacks) are held back meanwhile: the one StorageError raised
    names `flag`, the path and the cause.
    """
    if is_local(path):
        return
    name = f"{flag}={path}" if flag else path
    check(path, flag)
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)

    def probe():
        try:
            isdir(path)
        except FileNotFoundError:  # a listing 404s only when the bucket does not exist
            raise StorageError(path, f"bucket {path_bucket(path)} does not exist") from None
        if write:
            marker = join(path, f".flowerpipe-write-check-{uuid.uuid4().hex[:12]}")
            write_bytes(marker, b"")
            delete(marker)

    result: dict = {}

    def run():
        try:
            probe()
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True, name=f"storage-preflight-{uuid.uuid4().hex[:8]}")
    with _quiet_clients(thread.name) as retries:
        start = time.monotonic()
        thread.start()
        thread.join(timeout)
    if thread.is_alive():
        raise StorageError(
            name,
            f"cannot reach the storage service: no answer in {time.monotonic() - start:.0f} s "
            f"({TIMEOUT_ENV}={timeout:g}); last retry: {retries.last or 'none logged'}",
        )
    error = result.get("error")
    if isinstance(error, StorageError):
        raise StorageError(name, error.cause, error.action) from error
    if error is not None:
        raise StorageError(name, describe(error, path, "list")) from error


class _RetryLog(logging.Handler):
    """Keeps the last 'Retrying ...' line the clients log (google-api-core, botocore) in one thread."""

    def __init__(self, thread_name: str):
        super().__init__(logging.DEBUG)
        self.thread_name, self.last = thread_name, ""

    def emit(self, record):
        if record.threadName != self.thread_name:
            return
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:  # botocore logs the exception it retries
            message = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        elif not message.startswith("Retrying due to"):  # google-api-core's own line
            return
        message = " ".join(message.split())
        errno_text = re.search(r"\[Errno -?\d+\] [^\"')\]]+", message)  # "[Errno 111] Connection refused"
        self.last = errno_text.group(0) if errno_text else message[:300]


@contextlib.contextmanager
def _quiet_clients(thread_name: str):
    """Holds back every log line (Beam's S3 client logs a traceback at ERROR on the root logger)
    and yields the clients' last retry message."""
    retries = _RetryLog(thread_name)
    watched = [logging.getLogger(n) for n in ("google.api_core.retry", "botocore")]
    saved = [(lg, lg.level, lg.propagate) for lg in watched]
    root = logging.getLogger()
    root_level = root.level
    for lg in watched:
        lg.addHandler(retries)
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
    root.setLevel(logging.CRITICAL + 1)
    try:
        yield retries
    finally:
        root.setLevel(root_level)
        for lg, level, propagate in saved:
            lg.removeHandler(retries)
            lg.setLevel(level)
            lg.propagate = propagate


@_pathlike
def path_bucket(path: str) -> str:
    """The bucket of a remote path ('b' of gs://b/x)."""
    return path.split("://", 1)[-1].split("/", 1)[0]
