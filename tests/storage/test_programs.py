"""Every program refuses a store it cannot use before any work, in one line naming the flag, the
path and the cause (exit 2): a missing bucket, a permission error (403), an unreachable store,
and s3:// where TensorFlow would have to open it. Nothing is written anywhere meanwhile."""

from __future__ import annotations

import os
import socket

import pytest

from storage import fs
from tests.conftest import run_cli


def _one_line_error(proc, *expected: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def test_crawl_into_a_missing_bucket_fetches_nothing(gcs, flower_site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = len(flower_site.requests)
    proc = run_cli(
        "crawler.crawl",
        f"--url_template={flower_site.search_template()}",
        "--classes=daisy",
        "--out_dir=gs://no-such-bucket/raw",
        "--allow_private_hosts",
        check=False,
    )
    _one_line_error(proc, "--out_dir=gs://no-such-bucket/raw: bucket no-such-bucket does not exist")
    assert len(flower_site.requests) == before and os.listdir(tmp_path) == []  # no ./gs:/ folder either


def test_build_into_a_bucket_without_permission_publishes_nothing(gcs, gcs_server, crawled_dir):
    gcs_server.deny(fs.path_bucket(gcs))
    proc = run_cli(
        "pipelines.build_tfrecords", f"--input_dir={crawled_dir}", f"--output_dir={gcs}/tfrecords", check=False
    )
    _one_line_error(proc, f"--output_dir={gcs}/tfrecords: cannot list: permission denied on bucket", "(403)")
    gcs_server.denied.discard(fs.path_bucket(gcs))
    assert fs.list_files(gcs) == []


def test_an_unreachable_store_is_named_after_the_timeout(gcs, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv(fs.TIMEOUT_ENV, "3")
    monkeypatch.chdir(tmp_path)
    proc = run_cli("pipelines.build_tfrecords", f"--input_dir={gcs}/raw", "--output_dir=out", check=False)
    _one_line_error(
        proc, f"--input_dir={gcs}/raw: cannot reach the storage service: no answer in", "Connection refused"
    )
    assert os.listdir(tmp_path) == []


def test_inspect_names_a_missing_bucket(gcs, capsys):
    from pipelines import inspect_dataset
    from tests.pipelines.conftest import run_main

    assert run_main(inspect_dataset.main, "gs://no-such-bucket/tfrecords/x/1.0.0") == 2
    assert (
        capsys.readouterr().err
        == "error: gs://no-such-bucket/tfrecords/x/1.0.0: bucket no-such-bucket does not exist\n"
    )


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--run_dir=s3://b/run", "--data_dir=x"], "--run_dir=s3://b/run: TensorFlow 2.21 has no s3:// filesystem"),
        (
            ["--run_dir=r", "--data_dir=s3://b/tfrecords/x/1.0.0"],
            "--data_dir=s3://b/tfrecords/x/1.0.0: TensorFlow 2.21",
        ),
        (
            ["--run_dir=gs://no-such-bucket/run", "--data_dir=x"],
            "--run_dir=gs://no-such-bucket/run: bucket no-such-bucket does not exist",
        ),
    ],
)
def test_train_refuses_what_tensorflow_cannot_open(flags, message, gcs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(run_cli("trainer.train", *flags, check=False), message)
    if "s3://" in message:
        assert "use gs://, or mount the bucket" in line
    assert os.listdir(tmp_path) == []


def test_predict_names_a_run_dir_without_an_export(gcs, tmp_path):
    fs.write_bytes(fs.join(gcs, "img.jpg"), b"x")
    proc = run_cli("trainer.predict", f"--run_dir={gcs}/runs/none", f"{gcs}/img.jpg", check=False)
    _one_line_error(proc, f"{gcs}/runs/none/export not found: train first")
    proc = run_cli("trainer.predict", "--run_dir=s3://b/run", f"{gcs}/img.jpg", check=False)
    _one_line_error(proc, "--run_dir=s3://b/run: TensorFlow 2.21 has no s3:// filesystem")
