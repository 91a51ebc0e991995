"""The Beam stages on s3:// (moto on 127.0.0.1): the crawler's Beam download into a bucket, the
build from that bucket into another, inspect on the result. The Beam programs reach S3 through
their pipeline options alone (--s3_endpoint_url ...): no AWS variable in their environment."""

from __future__ import annotations

import json
import os

import pytest

from pipelines import inspect_dataset
from storage import fs, jsonl
from tests.conftest import run_cli
from tests.pipelines.conftest import run_main

pytestmark = pytest.mark.slow


def test_crawl_build_and_inspect_on_s3(s3, s3_server, crawled_dir, capsys):
    options = [
        f"--s3_endpoint_url={s3_server.endpoint}",
        "--s3_access_key_id=test",
        "--s3_secret_access_key=test",
        "--s3_region_name=us-east-1",
    ]
    no_aws = {k: "" for k in s3_server.env()}  # the options must be enough, for the driver and the workers
    raw, out = fs.join(s3, "raw"), fs.join(s3, "tfrecords")
    # A few candidates: each S3 call costs ~0.2 s of CPU here (Beam's S3 filesystem makes a boto3 client per call).
    good = {m["url"] for m in jsonl.read_all(str(crawled_dir / "manifest.jsonl")) if m["class"] == "daisy"}
    daisy = [line for line in (crawled_dir / "candidates.jsonl").read_text().splitlines() if '"daisy"' in line]
    daisy = [line for line in daisy if json.loads(line)["url"] in good][:5] + [
        line for line in daisy if json.loads(line)["url"] not in good
    ][:3]
    fs.write_text(fs.join(raw, "candidates.jsonl"), "\n".join(daisy) + "\n")
    proc = run_cli(
        "crawler.crawl",
        "--phase=download",
        "--classes=daisy",
        f"--out_dir={raw}",
        "--allow_private_hosts",
        "--per_host_delay=0",
        "--runner=DirectRunner",
        "--direct_running_mode=in_memory",
        *options,
        env=no_aws,
    )
    assert "this run (DirectRunner)" in proc.stdout
    manifest = jsonl.read_all(fs.join(raw, "manifest.jsonl"))
    urls = {json.loads(line)["url"] for line in daisy}
    local = [m for m in jsonl.read_all(str(crawled_dir / "manifest.jsonl")) if m["url"] in urls]
    assert [(m["key"], m["url"]) for m in manifest] == [(m["key"], m["url"]) for m in local] and len(manifest) == 5
    for m in manifest:
        assert (
            fs.read_bytes(fs.join(raw, "daisy", f"{m['sha256']}.jpg"))
            == (crawled_dir / m["key"]).with_suffix(".jpg").read_bytes()
        )

    proc = run_cli(
        "pipelines.build_tfrecords",
        f"--input_dir={raw}",
        f"--output_dir={out}",
        "--dataset_name=s3ds",
        "--image_size=24",
        "--splits=train:0.5,test:0.5",
        *options,
        env=no_aws,
    )  # worker processes
    assert f"-> {out}/s3ds/1.0.0" in proc.stdout
    data = fs.join(out, "s3ds", "1.0.0")
    names = fs.listdir(data)
    assert {"dataset_info.json", "features.json", "stats.json", "dead_letter.jsonl", "class_histogram.png"} <= set(
        names
    ) and len([n for n in names if ".tfrecord-" in n]) == 2
    assert fs.read_bytes(fs.join(data, "dead_letter.jsonl")) == b""  # empty: Beam alone cannot write it to S3
    assert sum(fs.read_json(fs.join(data, "stats.json"))["examples_per_split"].values()) == len(manifest)
    assert not [p for p in fs.list_files(out) if ".incomplete" in p]

    # inspect, here in this process, reads through boto3's environment (the s3 fixture set it)
    assert run_main(inspect_dataset.main, data, "--examples=2") == 0
    assert f"OK: 2 shard(s), {len(manifest)} records verified" in capsys.readouterr().out
    assert not os.path.exists("s3:")
