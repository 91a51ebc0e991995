"""The download phase as a Beam job (DirectRunner) against the local flower site: the same
manifest and rejections as the local thread pool, resumable, nothing left behind."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest

from crawler import net
from crawler.candidates import Candidate, read_candidates, write_candidates
from crawler.classes import parse_classes
from crawler.discovery import discover
from crawler.distributed import download_beam, make_tasks, partition_of, pipeline_args
from crawler.download import DownloadConfig, download
from crawler.flowersite import FlowerSite
from crawler.sources import SourceOptions, get_source
from crawler.store import Store
from tests.conftest import run_cli

CLASSES = "daisy,rose"
IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def accepted(out):
    return [(m["key"], m["url"]) for m in read_jsonl(out / "manifest.jsonl")]


def rejected(out):
    return [(r["url"], r["class"], r["reason"], r.get("other_url", "")) for r in read_jsonl(out / "rejected.jsonl")]


def assert_clean(out):
    """Exactly the manifest's images under <class>/, each whole; no work area, no temp file."""
    files = {f"{p.parent.name}/{p.stem}" for p in out.glob("*/*") if not p.parent.name.startswith(".")}
    assert files == {key for key, _ in accepted(out)}
    for m in read_jsonl(out / "manifest.jsonl"):
        ext = "jpg" if m["format"] == "jpeg" else "png"
        assert hashlib.sha256((out / m["class"] / f"{m['sha256']}.{ext}").read_bytes()).hexdigest() == m["sha256"]
    assert not (out / ".download").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def site():
    with FlowerSite(per_class=8, seed=3) as s:
        yield s


@pytest.fixture(scope="module")
def fetch_config():
    return net.FetchConfig(allow_private_hosts=True, per_host_delay=0, per_host_concurrency=8)


@pytest.fixture(scope="module")
def candidates(site, fetch_config, tmp_path_factory):
    source = get_source("html", SourceOptions(url_template=site.search_template()))
    found = discover(source, parse_classes(CLASSES), net.Fetcher(fetch_config))
    path = tmp_path_factory.mktemp("candidates") / "candidates.jsonl"
    write_candidates(str(path), found)
    return path


def fresh(tmp_path, candidates, name):
    out = tmp_path / name
    out.mkdir()
    shutil.copy(candidates, out / "candidates.jsonl")
    return out


@pytest.mark.slow
def test_beam_runner_cli_gives_the_local_manifest_and_rejections(site, candidates, tmp_path):
    local, beam = fresh(tmp_path, candidates, "local"), fresh(tmp_path, candidates, "beam")
    common = [
        "crawler.crawl",
        "--phase=download",
        f"--classes={CLASSES}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--workers=4",
    ]
    run_cli(*common, f"--out_dir={local}")
    proc = run_cli(
        *common,
        f"--out_dir={beam}",
        "--runner=DirectRunner",
        "--direct_num_workers=2",
        "--partition_by=url",
        "--partitions=4",
    )
    assert "this run (DirectRunner)" in proc.stdout
    assert accepted(beam) == accepted(local) and len(accepted(local)) >= 12
    assert rejected(beam) == rejected(local)
    assert {r[2] for r in rejected(local)} >= {"duplicate", "near_duplicate", "robots_disallowed", "corrupt"}
    assert_clean(beam)
    stats = json.loads((beam / "crawl_stats.json").read_text())
    assert stats["this_run"]["runner"] == "DirectRunner" and stats["this_run"]["partitions"] == 4
    assert 1 <= stats["this_run"]["worker_processes"] <= 2
    assert sum(stats["requests_per_host"].values()) >= len(accepted(beam))

    before = len(site.requests)  # resume: everything is decided, nothing is fetched again
    run_cli(*common, f"--out_dir={beam}", "--runner=DirectRunner", "--direct_running_mode=in_memory")
    assert len(site.requests) == before
    assert accepted(beam) == accepted(local)
    assert_clean(beam)


@pytest.mark.slow
def test_merge_matches_local_with_caps_retractions_and_a_resume(site, candidates, fetch_config, tmp_path):
    """Class caps, a URL listed under both classes (cross-class retraction), and a resumed run whose
    daisy class is full when the workers start but gets a slot back from that retraction."""
    cands = list(read_candidates(str(candidates)))
    daisy = [c for c in cands if c.klass == "daisy"]
    rose = [c for c in cands if c.klass == "rose"]
    assert daisy[0].url.endswith("/img/daisy/0.jpg") and daisy[12].url.endswith("/img/daisy/5.jpg")
    config = DownloadConfig(workers=4, max_per_class=3)
    first = daisy[:10] + rose[:2]
    second = first + [dataclasses.replace(daisy[0], klass="rose")] + daisy[10:] + rose[2:]
    outs = {name: fresh(tmp_path, candidates, name) for name in ("local", "beam")}
    for name, out in outs.items():

        def run(cands):
            if name == "local":
                return download(cands, Store(str(out)), net.Fetcher(fetch_config), config)
            return download_beam(
                cands, Store(str(out)), net.Fetcher(fetch_config), config, IN_MEMORY, partitions=3, partition_by="url"
            )

        run(first)
        assert [url for key, url in accepted(out) if key.startswith("daisy/")] == [c.url for c in daisy[:3]]
        stats = run(second)
        assert stats["this_run"]["retracted"] == 1 and stats["accepted_per_class"] == {"daisy": 3, "rose": 3}
        assert daisy[12].url in {url for _, url in accepted(out)}  # fetched after the retraction freed a slot
        assert_clean(out)
    assert accepted(outs["beam"]) == accepted(outs["local"])
    assert rejected(outs["beam"]) == rejected(outs["local"])
    assert tuple(r[2] for r in rejected(outs["local"]) if daisy[0].url == r[0]) == (
        "cross_class_duplicate",
        "duplicate_other_class",
    )


def test_partitions_are_stable_and_keep_a_host_together():
    urls = [f"http://h{i % 3}.example/{i}.jpg" for i in range(30)]
    tasks = make_tasks(urls, 8, "host")
    assert len(tasks) <= 3 and sorted(u for _, _, us in tasks for u in us) == sorted(urls)
    for _, n, us in tasks:
        assert n == 8 and len({u.split("/")[2] for u in us}) == 1 and us == [u for u in urls if u in us]
    assert partition_of("http://a.example/x.jpg", 16, "url") == 11  # SHA-1 based: the same in every process
    by_url = make_tasks(urls, 8, "url")
    assert len(by_url) > 3
    with pytest.raises(ValueError, match="partition_by"):
        make_tasks(urls, 8, "domain")


def test_pipeline_args_pin_the_multiprocess_direct_runner_unless_told():
    assert pipeline_args("DirectRunner", []) == [
        "--runner=DirectRunner",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
        "--default_sdk_harness_log_level=WARNING",
    ]
    args = pipeline_args("DirectRunner", ["--direct_running_mode=in_memory"])
    assert "--direct_running_mode=multi_processing" not in args and "--direct_running_mode=in_memory" in args
    assert pipeline_args("DataflowRunner", ["--project=p"]) == ["--runner=DataflowRunner", "--project=p"]


def test_unknown_flags_need_a_beam_runner(tmp_path):
    write_candidates(str(tmp_path / "candidates.jsonl"), [Candidate("http://127.0.0.1:9/a.jpg", "daisy")])
    proc = run_cli(
        "crawler.crawl",
        "--phase=download",
        f"--out_dir={tmp_path}",
        "--classes=daisy",
        "--direct_num_workers=2",
        check=False,
    )
    assert proc.returncode != 0 and "unexpected arguments" in proc.stderr and "--runner" in proc.stderr
