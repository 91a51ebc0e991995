"""The crawler against the real local flower site (sockets on 127.0.0.1)."""

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from crawler import net
from crawler.candidates import Candidate, write_candidates
from crawler.store import Store
from storage import fs, jsonl
from tests.conftest import SMALL_CLASSES, run_cli
from tests.crawler import badserver as bs

TRAP_REASONS = {
    "/private/": "robots_disallowed",
    "/missing-": "http_404",
    "/fake.jpg": "not_an_image",
    "/truncated.jpg": "corrupt",
    "/huge.png": "too_many_pixels",
    "/tiny.jpg": "too_small",
    "/reencoded/": "near_duplicate",
    "/mirror/": "duplicate",
}


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_manifest_lists_content_addressed_images(crawled_dir):
    manifest = read_jsonl(crawled_dir / "manifest.jsonl")
    assert {m["class"] for m in manifest} == set(SMALL_CLASSES.split(","))
    for m in manifest:
        for field in (
            "key",
            "class",
            "url",
            "page_url",
            "sha256",
            "width",
            "height",
            "bytes",
            "format",
            "source",
            "time",
        ):
            assert field in m, field
        ext = "jpg" if m["format"] == "jpeg" else "png"
        path = crawled_dir / m["class"] / f"{m['sha256']}.{ext}"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == m["sha256"] and len(data) == m["bytes"]
        assert m["key"] == f"{m['class']}/{m['sha256']}"
    assert not [p for p in crawled_dir.rglob("*") if ".tmp" in p.name]


def test_every_trap_is_rejected_with_its_reason(crawled_dir):
    rejected = read_jsonl(crawled_dir / "rejected.jsonl")
    for klass in SMALL_CLASSES.split(","):
        mine = [r for r in rejected if r["class"] == klass]
        for marker, reason in TRAP_REASONS.items():
            hits = [r for r in mine if marker in r["url"]]
            assert hits and all(r["reason"] == reason for r in hits), (klass, marker, hits)


def test_candidates_are_all_accounted_for(crawled_dir):
    candidates = read_jsonl(crawled_dir / "candidates.jsonl")
    manifest = read_jsonl(crawled_dir / "manifest.jsonl")
    rejected = read_jsonl(crawled_dir / "rejected.jsonl")
    assert sorted(c["url"] for c in candidates) == sorted([m["url"] for m in manifest] + [r["url"] for r in rejected])
    stats = json.loads((crawled_dir / "crawl_stats.json").read_text())
    assert stats["accepted"] == len(manifest) and stats["rejected"] == len(rejected)


def test_robots_txt_is_fetched_once_and_obeyed_with_our_user_agent(crawled_dir, flower_site):
    paths = [r["path"] for r in flower_site.requests]
    assert paths.count("/robots.txt") >= 1
    assert not [p for p in paths if p.startswith("/private/")]
    agents = {r["user_agent"] for r in flower_site.requests}
    assert all(a.startswith("flowerpipe-crawler/") and "(+http" in a for a in agents), agents


def test_a_second_run_fetches_nothing_again(crawled_dir, flower_site, tmp_path):
    out = tmp_path / "raw"
    shutil.copytree(crawled_dir, out)
    before = len(flower_site.requests)
    run_cli(
        "crawler.crawl", "--phase=download", f"--classes={SMALL_CLASSES}", f"--out_dir={out}", "--allow_private_hosts"
    )
    assert len(flower_site.requests) == before
    assert (out / "manifest.jsonl").read_text() == (crawled_dir / "manifest.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["local", "gs"])
def test_kill_and_resume_gives_the_uninterrupted_manifest(store, crawled_dir, flower_site, tmp_path, request):
    """kill -9 in the middle of the download, then the same command: the uninterrupted result. On gs://
    the manifest lines of the last few seconds are lost with the kill (segments are written every few
    seconds), their images already moved: the resumed run decides them again, and leaves no image
    that no manifest line names."""
    out = str(tmp_path / "raw") if store == "local" else fs.join(request.getfixturevalue("gcs"), "raw")
    argv = [
        sys.executable,
        "-m",
        "crawler.crawl",
        f"--url_template={flower_site.search_template()}",
        f"--classes={SMALL_CLASSES}",
        f"--out_dir={out}",
        "--allow_private_hosts",
        "--per_host_delay=0.05",
        "--workers=2",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = len(read_jsonl(crawled_dir / "manifest.jsonl"))

    def images():
        return [p for p in fs.list_files(out) if re.fullmatch(r"[a-z]+/[0-9a-f]{64}\.(jpg|png)", p)]

    deadline = time.time() + 120
    while time.time() < deadline and len(images()) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 5 <= len(images()) < total and len(jsonl.read_all(fs.join(out, "manifest.jsonl"))) < total
    run_cli(*argv[2:])

    def essence(manifest):
        return [(m["key"], m["url"]) for m in manifest]

    manifest = jsonl.read_all(fs.join(out, "manifest.jsonl"))
    assert essence(manifest) == essence(read_jsonl(crawled_dir / "manifest.jsonl"))
    assert sorted(images()) == sorted(f"{m['key']}.{'jpg' if m['format'] == 'jpeg' else 'png'}" for m in manifest)
    assert not [p for p in fs.list_files(out) if ".tmp" in p or p.startswith((".download/", ".manifest"))]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--classes=daisy,tulipz"], "Unknown class 'tulipz'"),
        (["--source=flickr"], "Unknown source 'flickr'"),
        (["--url_template=http://127.0.0.1:9/search"], "has no {query}"),
        (["--classes=daisy,rose", "--start_url=http://127.0.0.1:9/"], "exactly one"),
    ],
)
def test_bad_input_is_a_one_line_error(flags, message, tmp_path):
    argv = ["crawler.crawl", f"--out_dir={tmp_path}", *flags]
    if not any(f.startswith(("--url_template", "--start_url")) for f in flags):
        argv.append("--url_template=http://127.0.0.1:9/search?q={query}")
    proc = run_cli(*argv, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]


def test_unreachable_host_fails_cleanly(tmp_path):
    proc = run_cli(
        "crawler.crawl",
        f"--out_dir={tmp_path}",
        "--classes=daisy",
        "--allow_private_hosts",
        "--url_template=http://127.0.0.1:9/search?q={query}",
        "--retries=0",
        check=False,
    )
    assert proc.returncode != 0 and "no candidates found" in proc.stderr and "host_unreachable" in proc.stderr


def test_output_dir_from_another_class_list_is_refused(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"class": "motorbike", "url": "http://x/1.jpg"}) + "\n")
    proc = run_cli(
        "crawler.crawl",
        f"--out_dir={tmp_path}",
        "--classes=daisy",
        "--url_template=http://127.0.0.1:9/search?q={query}",
        check=False,
    )
    assert proc.returncode != 0 and "motorbike" in proc.stderr
    assert os.path.getsize(tmp_path / "manifest.jsonl") > 0


# -- a hostile user (issue #13): a folder in use, DNS, userinfo, the work area, clear errors -----------------


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _userinfo_page(h, n):
    """A result page linking images through URLs that carry a user name and password."""
    host = h.server.bad.url.split("//", 1)[1]
    body = (
        f'<a href="http://u1:secret@{host}/img/41.jpg">a</a> <a href="http://u2:secret@{host}/img/42.jpg">b</a>'
        f'<img src="http://u3:secret@{host.upper()}/img/43.jpg"> <a href="/img/44.jpg">c</a>'
        '<a href="http://[::1/img/45.jpg">broken</a>'
    )
    h.reply(200, body.encode(), {"Content-Type": "text/html"})


@pytest.fixture(scope="module")
def server():
    with bs.BadServer(
        {
            "/robots.txt": bs.text("User-agent: *\nAllow: /\n"),
            "/img/": bs.seeded(),
            "/slow/": bs.seeded(seconds=0.4),
            "/search": _userinfo_page,
        }
    ) as s:
        yield s


def download_dir(tmp_path, urls, klass="daisy"):
    out = tmp_path / "raw"
    out.mkdir()
    write_candidates(str(out / "candidates.jsonl"), [Candidate(u, klass) for u in urls])
    return out


DOWNLOAD = ["--phase=download", "--classes=daisy", "--allow_private_hosts", "--per_host_delay=0"]


def test_a_second_crawl_into_a_folder_in_use_is_refused(server, tmp_path):
    out = download_dir(tmp_path, [f"{server.url}/slow/{i}.jpg" for i in range(6)])
    argv = ["crawler.crawl", *DOWNLOAD, f"--out_dir={out}", "--workers=1"]
    first = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not server.log(prefix="/slow/"):
            time.sleep(0.05)
        assert (out / ".lock").exists()
        second = run_cli(*argv, check=False)
        assert second.returncode == 2, second.stderr[-2000:]
        [error] = error_lines(second.stderr)
        assert f"pid {first.pid}" in error and str(out) in error and "Traceback" not in second.stderr
        assert json.loads((out / ".lock").read_text())["pid"] == first.pid  # the refused crawl left it alone
    finally:
        stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr[-3000:]
    keys = [m["key"] for m in read_jsonl(out / "manifest.jsonl")]
    assert len(keys) == len(set(keys)) == 6
    assert not (out / ".lock").exists() and not (out / ".download").exists()
    assert json.loads((out / "crawl_stats.json").read_text())["accepted"] == 6


def test_a_lock_left_by_a_killed_crawl_is_taken_over(server, tmp_path):
    out = download_dir(tmp_path, [f"{server.url}/img/{i}.jpg" for i in range(2)])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".lock").write_text(
        json.dumps(
            {
                "host": socket.gethostname(),
                "pid": int(dead.stdout),
                "what": "crawl",
                "since": time.time(),
                "heartbeat": time.time(),
                "token": "x",
            }
        )
    )
    proc = run_cli("crawler.crawl", *DOWNLOAD, f"--out_dir={out}")
    assert "taking over the lock" in proc.stderr
    assert len(read_jsonl(out / "manifest.jsonl")) == 2 and not (out / ".lock").exists()


def test_a_name_that_does_not_resolve_is_retryable_not_unsafe(tmp_path):
    urls = tmp_path / "urls.csv"
    urls.write_text("http://nonexistent.invalid/a.jpg,daisy\n")
    out = tmp_path / "raw"
    run_cli("crawler.crawl", "--source=urls", f"--urls_file={urls}", "--classes=daisy", f"--out_dir={out}", timeout=60)
    [r] = read_jsonl(out / "rejected.jsonl")
    assert r["reason"] == "dns_error" and r["retryable"] is True, r
    assert "nonexistent.invalid" in r["detail"]


@pytest.mark.parametrize("source", ["urls", "html"])
def test_urls_with_a_user_and_password_are_refused_and_the_password_kept_nowhere(source, server, tmp_path):
    host = server.url.split("//", 1)[1]
    if source == "urls":
        urls = tmp_path / "urls.csv"
        urls.write_text(
            f"http://u1:secret@{host}/img/41.jpg,daisy\nhttp://u2:secret@{host}/img/42.jpg,daisy\n"
            f"http://u3:secret@{host.upper()}/img/43.jpg,daisy\n{server.url}/img/44.jpg,daisy\n"
        )
        flags = ["--source=urls", f"--urls_file={urls}"]
    else:
        flags = [f"--url_template={server.url}/search?q={{query}}", "--max_pages=1"]
    out = tmp_path / "raw"
    mark = server.mark()
    proc = run_cli(
        "crawler.crawl", *flags, "--classes=daisy", f"--out_dir={out}", "--allow_private_hosts", "--per_host_delay=0"
    )
    assert "secret" not in proc.stdout + proc.stderr
    for path in out.rglob("*"):
        assert not path.is_file() or b"secret" not in path.read_bytes(), path
    seen = server.log(mark)
    assert not [
        e for e in seen if "Authorization" in e["headers"] or e["path"] in ("/img/41.jpg", "/img/42.jpg", "/img/43.jpg")
    ], seen
    assert [m["url"] for m in read_jsonl(out / "manifest.jsonl")] == [f"{server.url}/img/44.jpg"]
    refused = {r["url"]: r for r in read_jsonl(out / "rejected.jsonl") if r["reason"] == "userinfo_in_url"}
    assert sorted(refused) == sorted(f"http://{h}/img/{i}.jpg" for h, i in ((host, 41), (host, 42), (host.upper(), 43)))
    assert not any(r["retryable"] for r in refused.values())
    if source == "urls":
        assert f"{urls}:1" in refused[f"http://{host}/img/41.jpg"]["detail"]


def test_politeness_is_keyed_on_host_and_port_only():
    urls = [
        "http://u1:secret@Flowers.Test:8000/a.jpg",
        "http://u2:other@flowers.test:8000/b.jpg",
        "http://flowers.test:8000/c.jpg",
    ]
    assert {net.host_key(u) for u in urls} == {"flowers.test:8000"}
    assert net.host_key("http://flowers.test/a.jpg") == "flowers.test:80"
    assert net.host_key("https://flowers.test/a.jpg") == "flowers.test:443"
    assert net.host_key("http://[::1]:81/a.jpg") == "[::1]:81"
    fetcher = net.Fetcher()
    assert len({id(fetcher._gate(net.host_key(u))) for u in urls}) == 1
    with pytest.raises(net.FetchError) as e:
        fetcher.get(urls[0], 1000)
    assert e.value.reason == "userinfo_in_url" and "secret" not in str(e.value) and not e.value.retryable


def test_the_download_leaves_files_it_did_not_make_in_its_work_area(server, tmp_path):
    out = download_dir(tmp_path, [f"{server.url}/img/{i}.jpg" for i in range(2)])
    (out / ".download").mkdir()
    (out / ".download" / "mine.txt").write_text("my notes")
    (out / ".download" / "staging").mkdir()
    (out / ".download" / "staging" / ("a" * 64 + ".jpg")).write_bytes(b"left by a killed run")
    proc = run_cli("crawler.crawl", *DOWNLOAD, f"--out_dir={out}")
    assert (out / ".download" / "mine.txt").read_text() == "my notes"
    assert sorted(p.name for p in (out / ".download").iterdir()) == ["mine.txt"]
    assert "mine.txt" in proc.stderr
    assert len(read_jsonl(out / "manifest.jsonl")) == 2


def _read_only(path) -> list[str]:
    """A prefix that runs a command with `path` read-only (a read-only tmpfs in a mount namespace of
    its own when root, whom permission bits do not stop), or [] after a chmod."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        return []
    if not shutil.which("unshare"):
        pytest.skip("root without unshare: no read-only folder to be had")
    return ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o ro tmpfs {path} && exec "$@"', "sh"]


@pytest.mark.parametrize(
    "flag,named",
    [
        ("--workers=0", "--workers"),
        ("--workers=abc", "--workers"),
        ("--phase=bogus", "--phase"),
        ("--max_total_bytes=-5", "--max_total_bytes"),
        ("--max_image_bytes=0", "--max_image_bytes"),
        ("--min_side=-1", "--min_side"),
        ("--max_pixels=0", "--max_pixels"),
        ("--dedup_distance=65", "--dedup_distance"),
        ("--dedup_distance=-1", "--dedup_distance"),
        ("--url_template=http://x/{query}/{", "--url_template"),
        ("--url_template=http://x/{query}/{size}", "--url_template"),
        ("--classes=daisy,tulipz", "tulipz"),
        ("out_dir:file", "out_dir"),
        ("out_dir:under_a_file", "out_dir"),
        ("out_dir:read_only", "out_dir"),
    ],
)
def test_a_flag_or_folder_the_crawl_cannot_use_is_one_error_line_exit_2(flag, named, tmp_path):
    prefix = []
    out = tmp_path / "raw"
    if flag == "out_dir:file":
        out.write_text("a file")
    elif flag == "out_dir:under_a_file":
        (tmp_path / "file").write_text("a file")
        out = tmp_path / "file" / "raw"
    elif flag == "out_dir:read_only":
        prefix = _read_only(out)
    argv = ["crawler.crawl", f"--out_dir={out}", "--classes=daisy"]
    if not flag.startswith("--url_template"):
        argv.append("--url_template=http://127.0.0.1:9/search?q={query}")
    if not flag.startswith("out_dir:"):
        argv.append(flag)
    proc = subprocess.run([*prefix, sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    [error] = error_lines(proc.stderr)
    assert named in error and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if flag.startswith("out_dir:"):
        assert str(out) in error
    assert "no candidates" not in proc.stderr  # refused before any work


def test_bad_lines_of_a_urls_file_are_rejected_with_their_line_and_the_rest_crawled(server, tmp_path):
    urls = tmp_path / "urls.csv"
    good = [f"{server.url}/img/{i}.jpg" for i in (51, 52)]
    urls.write_text(
        f"url,class\n{good[0]},daisy\nhttp://{'x' * (20 * 1024 * 1024)}.jpg,daisy\n"
        f"http://[::1/img.jpg,daisy\nfile:///etc/passwd,daisy\n{good[1]},daisy\n"
    )
    out = tmp_path / "raw"
    proc = run_cli(
        "crawler.crawl",
        "--source=urls",
        f"--urls_file={urls}",
        "--classes=daisy",
        f"--out_dir={out}",
        "--allow_private_hosts",
        "--per_host_delay=0",
    )
    assert "Traceback" not in proc.stderr
    assert [m["url"] for m in read_jsonl(out / "manifest.jsonl")] == good
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [(r["reason"], r["retryable"]) for r in rejected] == [("bad_url", False)] * 3
    assert [r["detail"].split(": ", 1)[0] for r in rejected] == [f"{urls}:{n}" for n in (3, 4, 5)]
    assert max(len(json.dumps(r)) for r in rejected) < 2000  # the 20 MB URL is not copied
    for n in (3, 4, 5):
        assert f"{urls}:{n}" in proc.stderr


def test_a_full_disk_is_one_error_line_and_a_rerun_finishes_the_crawl(server, tmp_path):
    urls = [f"{server.url}/img/{i}.jpg" for i in range(60, 80)]
    out = download_dir(tmp_path, urls)
    argv = [sys.executable, "-m", "crawler.crawl", *DOWNLOAD, f"--out_dir={out}", "--workers=2"]

    def limit_file_size():  # every file this process writes stops growing at 4000 bytes: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    [error] = error_lines(proc.stderr)
    assert "no space left" in error and str(out) in error and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    done = Store(str(out)).load().accepted
    assert 0 < len(done) < len(urls)
    run_cli(*argv[2:])
    assert sorted(m["url"] for m in read_jsonl(out / "manifest.jsonl")) == sorted(urls)
    assert not (out / ".download").exists() and not (out / ".lock").exists()
