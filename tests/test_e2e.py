"""The demo chain at small scale with every path on gs:// (the GCS emulator): site -> crawl ->
Beam -> mirrored training -> predict, each stage its own program. The same chain on a local
disk is `make demo`; bench/bench_storage.py times the two side by side."""

import os

import pytest
import tensorflow as tf

from pipelines import shards
from pipelines.demo import DemoConfig, run_demo
from storage import fs, jsonl
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_demo_chain_on_gs_is_consistent_end_to_end(gcs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a path taken for a local one would land here, as ./gs:/...
    workspace = fs.join(gcs, "ws")
    cfg = DemoConfig(
        workspace=workspace,
        classes="daisy,sunflower,lavender",
        per_class=14,
        image_size=32,
        epochs=1,
        model="cifar_resnet20",
        extra_train_flags=("--batch_size=8", "--log_every=1"),
    )
    summary = run_demo(cfg)
    for key, path in summary["paths"].items():
        assert path and (fs.exists(path) or fs.isdir(path)), key
        assert path.startswith(workspace), (key, path)
    assert os.listdir(tmp_path) == [], "nothing written outside the bucket"

    manifest = jsonl.read_all(summary["paths"]["manifest"])
    stats = fs.read_json(fs.join(cfg.data_dir, "stats.json"))
    dead = jsonl.read_all(fs.join(cfg.data_dir, "dead_letter.jsonl"))
    examples = sum(stats["examples_per_split"].values())
    assert len(manifest) == examples + len(dead) and examples > 20
    assert stats["class_names"] == ["daisy", "sunflower", "lavender"]

    # Every crawled key made it into the TFRecords exactly once (read back through the storage layer).
    keys, test_images = [], []
    for path in fs.glob(cfg.data_dir, "flowers-*.tfrecord-*"):
        for raw in shards.read_records(path):
            ex = tf.io.parse_single_example(
                raw, {"key": tf.io.FixedLenFeature([], tf.string), "image": tf.io.FixedLenFeature([], tf.string)}
            )
            keys.append(ex["key"].numpy().decode())
            if "-test." in path:
                test_images.append(ex["image"].numpy())
    assert sorted(keys) == sorted(m["key"] for m in manifest)

    # The run dir holds everything, wherever it is; predict reads the model and the images from there.
    for name in (
        "config.json",
        "labels.txt",
        "preprocessing.json",
        "metrics.jsonl",
        "report.json",
        "curves.png",
        "confusion.png",
        "model.keras",
        "export/saved_model.pb",
        "checkpoints/checkpoint",
    ):
        assert fs.exists(fs.join(cfg.run_dir, name)), name
    assert fs.glob(fs.join(cfg.run_dir, "logs"), "events.out.tfevents.*")
    fs.write_bytes(fs.join(workspace, "query", "a.jpg"), test_images[0])
    fs.write_bytes(fs.join(workspace, "query", "b.jpg"), test_images[1])
    proc = run_cli("trainer.predict", f"--run_dir={cfg.run_dir}", "--top_k=3", fs.join(workspace, "query"))
    lines = proc.stdout.splitlines()
    assert [line.rsplit(": ", 1)[0] for line in lines] == [fs.join(workspace, "query", n) for n in ("a.jpg", "b.jpg")]
    for line in lines:
        probs = [float(p.rsplit(" ", 1)[1]) for p in line.rsplit(": ", 1)[1].split(", ")]
        assert len(probs) == 3 and abs(sum(probs) - 1) < 2e-3, line
    report = fs.read_json(summary["paths"]["report"])
    assert summary["test_top1"] == report["splits"]["test"]["top1"] and report["hardware"]["replicas"] == 2
    # top-1 is a count of the test split's examples, each once: the padding the 2 replicas need is not counted
    test = report["splits"]["test"]
    assert test["examples"] == stats["examples_per_split"]["test"], (test, stats["examples_per_split"])
    assert abs(test["top1"] * test["examples"] - round(test["top1"] * test["examples"])) < 1e-6, test
