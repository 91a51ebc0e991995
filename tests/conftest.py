"""Session fixtures: one local flower site, one small crawl and one small TFRecord build,
shared by every test that needs them (built once per test run), and object stores (a GCS
emulator TensorFlow reaches too, moto's S3) started on first use. Only 127.0.0.1 is used."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys

import pytest

SMALL_CLASSES = "daisy,rose,tulip"
SMALL_PER_CLASS = 12


def logged(message: str, stderr: str) -> bool:
    """`message` begins a log line in the quiet console's format, `12:03:04 message`."""
    return re.search(rf"(?m)^\d\d:\d\d:\d\d {re.escape(message)}", stderr) is not None


def run_cli(
    *argv: str, check: bool = True, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Runs `python -m <argv>` in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
        )
    return proc


def build_tfrecords(input_dir, out, name: str, *extra: str):
    """The Beam job over `input_dir` at 32 px, split 60/20/20, into `out`; returns the version folder."""
    run_cli(
        "pipelines.build_tfrecords",
        f"--input_dir={input_dir}",
        f"--output_dir={out}",
        f"--dataset_name={name}",
        "--image_size=32",
        "--splits=train:0.6,validation:0.2,test:0.2",
        *extra,
    )
    return out / name / "1.0.0"


def strip_channel_stats(data_dir) -> None:
    """Removes the Beam job's `channel_stats` from a dataset folder (TFDS's metadata.json and
    stats.json), as a dataset from before them or from elsewhere: the trainer then computes them."""
    import json
    import pathlib

    for name in ("metadata.json", "stats.json"):
        path = pathlib.Path(data_dir) / name
        doc = json.loads(path.read_text())
        doc.pop("channel_stats", None)
        path.write_text(json.dumps(doc))


@pytest.fixture(scope="session")
def flower_site():
    from crawler.flowersite import FlowerSite

    with FlowerSite(per_class=SMALL_PER_CLASS, seed=7) as site:
        yield site


@pytest.fixture(scope="session")
def crawled_dir(flower_site, tmp_path_factory):
    """A finished crawl of three classes from the local site."""
    out = tmp_path_factory.mktemp("crawl") / "raw"
    run_cli(
        "crawler.crawl",
        f"--url_template={flower_site.search_template()}",
        f"--classes={SMALL_CLASSES}",
        f"--out_dir={out}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--workers=8",
    )
    return out


@pytest.fixture(scope="session")
def tfrecords_dir(crawled_dir, tmp_path_factory):
    """TFRecords built by the Beam job from the crawl (32 px, one augmented copy)."""
    return build_tfrecords(crawled_dir, tmp_path_factory.mktemp("tfrecords"), "small", "--augment_copies=1")


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    from tests.objectstore import GcsServer

    with GcsServer(str(tmp_path_factory.mktemp("gcs"))) as server:
        yield server


@pytest.fixture(scope="session")
def s3_server():
    from tests.objectstore import S3Server

    with S3Server() as server:
        yield server


_buckets = itertools.count()


def _new_bucket(server, scheme: str) -> str:
    name = f"test-{os.getpid()}-{next(_buckets)}"
    server.create_bucket(name)
    return f"{scheme}://{name}"


@pytest.fixture
def gcs(gcs_server, monkeypatch):
    """A fresh gs:// bucket; this process (and the programs it starts, see `store_env`) reach the emulator."""
    for k, v in gcs_server.env().items():
        monkeypatch.setenv(k, v)
    return _new_bucket(gcs_server, "gs")


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh s3:// bucket on moto, reached through boto3's environment (Beam's S3 filesystem)."""
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    return _new_bucket(s3_server, "s3")


@pytest.fixture(params=["local", "gs", "s3"])
def any_store(request, tmp_path):
    """A folder on each kind of storage: a local path, a gs:// bucket, an s3:// bucket."""
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("gcs" if request.param == "gs" else "s3")
