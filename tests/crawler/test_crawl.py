"""The crawler against the real local flower site (sockets on 127.0.0.1)."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from storage import fs, jsonl
from tests.conftest import SMALL_CLASSES, run_cli

TRAP_REASONS = {
    "/private/": "robots_disallowed", "/missing-": "http_404", "/fake.jpg": "not_an_image",
    "/truncated.jpg": "corrupt", "/huge.png": "too_many_pixels", "/tiny.jpg": "too_small",
    "/reencoded/": "near_duplicate", "/mirror/": "duplicate",
}


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_manifest_lists_content_addressed_images(crawled_dir):
    manifest = read_jsonl(crawled_dir / "manifest.jsonl")
    assert {m["class"] for m in manifest} == set(SMALL_CLASSES.split(","))
    for m in manifest:
        for field in ("key", "class", "url", "page_url", "sha256", "width", "height", "bytes", "format", "source",
                      "time"):
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
    run_cli("crawler.crawl", "--phase=download", f"--classes={SMALL_CLASSES}", f"--out_dir={out}",
            "--allow_private_hosts")
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
    argv = [sys.executable, "-m", "crawler.crawl", f"--url_template={flower_site.search_template()}",
            f"--classes={SMALL_CLASSES}", f"--out_dir={out}", "--allow_private_hosts", "--per_host_delay=0.05",
            "--workers=2"]
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


@pytest.mark.parametrize("flags,message", [
    (["--classes=daisy,tulipz"], "Unknown class 'tulipz'"),
    (["--source=flickr"], "Unknown source 'flickr'"),
    (["--url_template=http://127.0.0.1:9/search"], "has no {query}"),
    (["--classes=daisy,rose", "--start_url=http://127.0.0.1:9/"], "exactly one"),
])
def test_bad_input_is_a_one_line_error(flags, message, tmp_path):
    argv = ["crawler.crawl", f"--out_dir={tmp_path}", *flags]
    if not any(f.startswith(("--url_template", "--start_url")) for f in flags):
        argv.append("--url_template=http://127.0.0.1:9/search?q={query}")
    proc = run_cli(*argv, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]


def test_unreachable_host_fails_cleanly(tmp_path):
    proc = run_cli("crawler.crawl", f"--out_dir={tmp_path}", "--classes=daisy", "--allow_private_hosts",
                   "--url_template=http://127.0.0.1:9/search?q={query}", "--retries=0", check=False)
    assert proc.returncode != 0 and "no candidates found" in proc.stderr and "host_unreachable" in proc.stderr


def test_output_dir_from_another_class_list_is_refused(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"class": "motorbike", "url": "http://x/1.jpg"}) + "\n")
    proc = run_cli("crawler.crawl", f"--out_dir={tmp_path}", "--classes=daisy",
                   "--url_template=http://127.0.0.1:9/search?q={query}", check=False)
    assert proc.returncode != 0 and "motorbike" in proc.stderr
    assert os.path.getsize(tmp_path / "manifest.jsonl") > 0
