"""The demo chain at small scale: site -> crawl -> Beam -> mirrored training -> predict."""

import json

import pytest
import tensorflow as tf

from pipelines.demo import DemoConfig, run_demo

pytestmark = pytest.mark.slow


def test_demo_chain_is_consistent_end_to_end(tmp_path):
    cfg = DemoConfig(workspace=str(tmp_path / "ws"), classes="daisy,sunflower,lavender", per_class=14,
                     image_size=32, epochs=1, model="cifar_resnet20",
                     extra_train_flags=("--batch_size=8", "--log_every=1"))
    summary = run_demo(cfg)
    for key, path in summary["paths"].items():
        assert path and tf.io.gfile.exists(path), key

    with open(summary["paths"]["manifest"]) as f:
        manifest = [json.loads(line) for line in f]
    with open(f"{cfg.data_dir}/stats.json") as f:
        stats = json.load(f)
    with open(f"{cfg.data_dir}/dead_letter.jsonl") as f:
        dead = [line for line in f if line.strip()]
    examples = sum(stats["examples_per_split"].values())
    assert len(manifest) == examples + len(dead) and examples > 0
    assert stats["class_names"] == ["daisy", "sunflower", "lavender"]

    # Every crawled key made it into the TFRecords exactly once.
    keys = []
    for path in tf.io.gfile.glob(f"{cfg.data_dir}/flowers-*.tfrecord-*"):
        for raw in tf.data.TFRecordDataset(path):
            keys.append(tf.io.parse_single_example(raw, {"key": tf.io.FixedLenFeature([], tf.string)})["key"]
                        .numpy().decode())
    assert sorted(keys) == sorted(m["key"] for m in manifest)

    # The trained, exported model predicts on a batch of TFRecord images.
    model = tf.saved_model.load(summary["paths"]["export"])
    raw = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(f"{cfg.data_dir}/flowers-test.*")).batch(4)))
    images = tf.io.parse_example(raw, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
    probs = model.serve_bytes(images)["probabilities"].numpy()
    assert probs.shape == (len(images), 3)
    assert abs(probs.sum(axis=1) - 1).max() < 1e-4
    assert 0 <= summary["test_top1"] <= 1
