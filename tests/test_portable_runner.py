"""Both Beam jobs through the portable job API, the path Flink, Spark and Dataflow take: Beam's
own job service and an EXTERNAL SDK worker pool, each a process of its own, with inputs and
outputs in gs:// buckets (the GCS emulator). The build must write the DirectRunner's bytes; the
crawl must end as the local thread pool does (which tests/crawler/test_distributed.py holds the
DirectRunner to)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from storage import fs, jsonl
from tests.conftest import SMALL_CLASSES, run_cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def portable(gcs_server):
    """Pipeline options for the portable runner; the job service and the worker pool run meanwhile.

    The pool starts SDK workers with `python` from its PATH: the venv's must come first, else
    they die ("No module named 'apache_beam'") and the job waits for them to its deadline.
    """
    env = {
        **os.environ,
        **gcs_server.env(),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    job, pool = _free_port(), _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", module, f"--{flag}={port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for module, flag, port in (
            ("apache_beam.runners.portability.local_job_service_main", "port", job),
            ("apache_beam.runners.worker.worker_pool_main", "service_port", pool),
        )
    ]
    deadline = time.time() + 60
    for port in (job, pool):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and all(p.poll() is None for p in procs), "job service or pool died"
                time.sleep(0.2)
    yield [
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{job}",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{pool}",
    ]
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def _upload(local_dir, remote: str) -> None:
    for root, _, files in os.walk(local_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), local_dir)
            fs.write_bytes(fs.join(remote, rel), open(os.path.join(root, name), "rb").read())


def _files(folder: str) -> dict[str, bytes]:
    return {rel: fs.read_bytes(fs.join(folder, rel)) for rel in fs.list_files(folder)}


def test_build_on_the_portable_runner_writes_the_direct_runners_bytes(portable, crawled_dir, gcs):
    _upload(crawled_dir, fs.join(gcs, "raw"))
    outputs = {}
    # The reference on the in-process DirectRunner: its bytes are the multi-process mode's (test_build.py).
    for name, runner in (("direct", ["--direct_running_mode=in_memory"]), ("portable", portable)):
        out = fs.join(gcs, name)
        proc = run_cli(
            "pipelines.build_tfrecords",
            f"--input_dir={gcs}/raw",
            f"--output_dir={out}",
            "--dataset_name=small",
            "--image_size=32",
            "--augment_copies=1",
            "--num_shards=2",
            "--splits=train:0.6,validation:0.2,test:0.2",
            *runner,
        )
        assert f"-> {out}/small/1.0.0" in proc.stdout
        outputs[name] = _files(fs.join(out, "small", "1.0.0"))
    direct, ported = outputs["direct"], outputs["portable"]
    assert sorted(direct) == sorted(ported) and len([n for n in direct if ".tfrecord-" in n]) == 6
    for name in direct:
        if name != "stats.json":  # its wall time and output_dir differ
            assert direct[name] == ported[name], name
    stats = {name: fs.read_json(fs.join(gcs, name, "small", "1.0.0", "stats.json")) for name in outputs}
    for s in stats.values():
        s.pop("wall_time_seconds")
        s["options"].pop("output_dir")
    assert stats["direct"] == stats["portable"]


def test_crawl_download_on_the_portable_runner_gives_the_local_pools_manifest(portable, crawled_dir, gcs):
    common = [
        "crawler.crawl",
        "--phase=download",
        f"--classes={SMALL_CLASSES}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--workers=4",
    ]
    beam = ["--partitions=4", "--partition_by=url"]
    results = {}
    for name, runner in (("local", []), ("portable", [*portable, *beam])):
        out = fs.join(gcs, name)
        fs.write_bytes(fs.join(out, "candidates.jsonl"), (crawled_dir / "candidates.jsonl").read_bytes())
        run_cli(*common, f"--out_dir={out}", *runner)
        untimed = [{k: v for k, v in d.items() if k != "time"} for d in jsonl.read_all(fs.join(out, "manifest.jsonl"))]
        rejected = [(d["url"], d["class"], d["reason"]) for d in jsonl.read_all(fs.join(out, "rejected.jsonl"))]
        files = {rel: data for rel, data in _files(out).items() if rel.count("/") == 1}  # <class>/<sha256>.<ext>
        results[name] = untimed, rejected, files
        assert fs.read_json(fs.join(out, "crawl_stats.json"))["this_run"]["runner"] == (
            runner[0].split("=")[1] if runner else "local"
        )
        assert not [p for p in fs.list_files(out) if p.startswith(".")]  # work area and segments gone
    assert results["portable"] == results["local"]
    assert len(results["local"][0]) == len(results["local"][2]) >= 30
