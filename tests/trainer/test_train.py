"""The trainer as users run it: `python -m trainer.train` in fresh processes (device setup
happens once per process), on the small TFRecords built from the local flower site."""

import json

import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TINY = [
    "--model=cifar_resnet20",
    "--image_size=32",
    "--batch_size=8",
    "--optimizer=adam",
    "--learning_rate=0.002",
    "--bn_momentum=0.9",
    "--log_every=2",
    "--deterministic",
    "--normalization=dataset",
]


def train(data_dir, run_dir, *extra, check=True):
    return run_cli("trainer.train", f"--data_dir={data_dir}", f"--run_dir={run_dir}", *TINY, *extra, check=check)


@pytest.fixture(scope="module")
def mirrored_run(tfrecords_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "mirrored"
    proc = train(tfrecords_dir, run_dir, "--epochs=2", "--strategy=mirrored", "--cpu_replicas=2")
    return run_dir, proc


def test_mirrored_run_writes_every_artifact(mirrored_run):
    run_dir, proc = mirrored_run
    for name in (
        "config.json",
        "metrics.jsonl",
        "report.json",
        "curves.png",
        "confusion.png",
        "labels.txt",
        "preprocessing.json",
        "model.keras",
        "export/saved_model.pb",
        "export/export_complete.json",
        "dataset.json",
        "checkpoints/checkpoint",
    ):
        assert (run_dir / name).exists(), name
    assert not (run_dir / ".incomplete-export").exists()
    assert list((run_dir / "logs").glob("events.out.tfevents.*"))
    report = json.loads((run_dir / "report.json").read_text())
    assert report["hardware"]["replicas"] == 2 and report["hardware"]["strategy"] == "MirroredStrategy"
    assert set(report["splits"]) == {"train", "validation", "test"}
    assert set(report["per_class"]) == {"daisy", "rose", "tulip"}
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss"]) for h in history)
    assert "test top-1" in proc.stdout


def test_running_again_resumes_and_trains_only_the_new_epochs(mirrored_run, tfrecords_dir):
    run_dir, _ = mirrored_run
    proc = train(tfrecords_dir, run_dir, "--epochs=3", "--strategy=mirrored", "--cpu_replicas=2")
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert "resumed from" in proc.stderr


def test_exported_model_in_a_fresh_process_matches_in_process(mirrored_run, tfrecords_dir, tmp_path):
    import tensorflow as tf

    from trainer.predict import Predictor

    run_dir, _ = mirrored_run
    images = []
    for i, ex in enumerate(tf.data.TFRecordDataset(sorted(str(p) for p in tfrecords_dir.glob("*-test.*"))).take(4)):
        feats = tf.io.parse_single_example(ex, {"image": tf.io.FixedLenFeature([], tf.string)})
        path = tmp_path / f"img{i}.jpg"
        path.write_bytes(feats["image"].numpy())
        images.append(path)
    expected = Predictor(str(run_dir)).predict([p.read_bytes() for p in images])
    proc = run_cli("trainer.predict", f"--run_dir={run_dir}", "--json", "--top_k=3", *map(str, images))
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    names = (run_dir / "labels.txt").read_text().split()
    for line, probs in zip(lines, expected):
        for top in line["top"]:
            assert top["probability"] == pytest.approx(float(probs[names.index(top["class"])]), abs=1e-5)
    # The SavedModel agrees with model.keras fed the same preprocessing.

    from trainer import data as data_lib
    from trainer.models import load_model  # registers the zoo's custom layers, then loads

    prep = json.loads((run_dir / "preprocessing.json").read_text())
    model = load_model(run_dir / "model.keras")
    x = tf.stack([data_lib.decode_resize(tf.constant(p.read_bytes()), prep["image_size"], 3) for p in images])
    logits = model(data_lib.normalize(x, prep["mean"], prep["std"]), training=False)
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), expected, atol=1e-5)


def test_eval_mode_evaluates_without_training(mirrored_run, tfrecords_dir):
    run_dir, _ = mirrored_run
    before = (run_dir / "metrics.jsonl").read_text()
    proc = run_cli(
        "trainer.train",
        f"--data_dir={tfrecords_dir}",
        f"--run_dir={run_dir}",
        *TINY,
        "--mode=eval",
        "--eval_split=validation",
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["split"] == "validation" and 0 <= result["top1"] <= 1 and result["examples"] > 0
    assert (run_dir / "metrics.jsonl").read_text() == before
    # Split across 2 replicas (batch 6: a padded last batch, every replica a non-empty slice),
    # evaluation gives what one device gives.
    results = {}
    for name, flags in (("one", ["--strategy=one_device"]), ("two", ["--strategy=mirrored", "--cpu_replicas=2"])):
        proc = run_cli(
            "trainer.train",
            f"--data_dir={tfrecords_dir}",
            f"--run_dir={run_dir}",
            *TINY,
            "--mode=eval",
            "--eval_split=validation",
            "--batch_size=6",
            *flags,
        )
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["one"]["examples"] == results["two"]["examples"] == result["examples"]
    assert results["one"]["examples"] % 6  # the last batch was padded
    assert results["two"]["loss"] == pytest.approx(results["one"]["loss"], rel=1e-4)
    assert results["two"]["top1"] == results["one"]["top1"] == pytest.approx(result["top1"])


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--model=resnet9000"], "Known models"),
        (["--strategy=mirrored", "--cpu_replicas=2", "--batch_size=5"], "not divisible by the 2 replicas"),
        (["--strategy=multi_worker"], "TF_CONFIG"),
        (["--preset=fastest"], "known presets"),
        (["--jit"], "--jit with --deterministic"),
        (["--precision=float8"], "--precision=float8"),
    ],
)
def test_bad_flags_are_one_line_errors(tfrecords_dir, tmp_path, flags, message):
    proc = train(tfrecords_dir, tmp_path / "run", *flags, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--learning_rate=-1"], "--learning_rate=-1.0: must be > 0"),
        (["--cpu_replicas=-4"], "--cpu_replicas=-4: must be >= 0"),
        (["--batch_size=0"], "--batch_size=0: must be >= 1"),
        (["--epochs=abc"], "--epochs=abc"),
        (["--preset=fastest"], "known presets"),
        (["--strategy=mirrored", "--cpu_replicas=TOO_MANY"], "CPU cores"),
    ],
)
def test_values_out_of_range_are_one_line_usage_errors(tmp_path, flags, message):
    """Exit 2 and one `error:` line, before any work (the data dir is not even looked at)."""
    from trainer import config as config_lib

    flags = [f.replace("TOO_MANY", str(4 * config_lib.usable_cores() + 1)) for f in flags]
    proc = run_cli("trainer.train", f"--data_dir={tmp_path}", f"--run_dir={tmp_path / 'run'}", *flags, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert message in lines[0]
    assert not (tmp_path / "run").exists()


def test_data_dir_without_metadata_is_refused(tmp_path):
    proc = run_cli("trainer.train", f"--data_dir={tmp_path}", f"--run_dir={tmp_path / 'run'}", check=False)
    assert proc.returncode != 0 and "dataset_info.json" in proc.stderr


def test_resuming_with_another_model_is_refused(mirrored_run, tfrecords_dir):
    run_dir, _ = mirrored_run
    config_before = (run_dir / "config.json").read_text()
    proc = run_cli(
        "trainer.train",
        f"--data_dir={tfrecords_dir}",
        f"--run_dir={run_dir}",
        *[f for f in TINY if not f.startswith("--model")],
        "--model=resnet18",
        check=False,
    )
    assert proc.returncode != 0 and "another model or data" in proc.stderr and "--force" in proc.stderr
    assert (run_dir / "config.json").read_text() == config_before


def test_short_fit_learns(tfrecords_dir, tmp_path):
    """Three well-separated classes: a few epochs must beat chance (1/3) clearly."""
    run_dir = tmp_path / "fit"
    train(tfrecords_dir, run_dir, "--epochs=8", "--strategy=one_device", "--skip_export")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["splits"]["train"]["top1"] >= 0.8, report["splits"]


@pytest.mark.parametrize(
    "flags", [["--precision=mixed_float16", "--jit", "--nodeterministic"], ["--precision=mixed_bfloat16"]]
)
def test_precision_and_xla_options_train(tfrecords_dir, tmp_path, flags):
    run_dir = tmp_path / "p"
    train(tfrecords_dir, run_dir, "--epochs=1", "--strategy=one_device", "--skip_export", *flags)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(history[-1]["loss"])


def test_auxiliary_heads_train_and_are_dropped_at_export(tfrecords_dir, tmp_path):

    from trainer.models import load_model  # registers the zoo's custom layers, then loads

    run_dir = tmp_path / "aux"
    run_cli(
        "trainer.train",
        f"--data_dir={tfrecords_dir}",
        f"--run_dir={run_dir}",
        "--model=googlenet",
        "--aux_heads",
        "--image_size=72",
        "--batch_size=8",
        "--epochs=1",
        "--optimizer=sgd",
        "--learning_rate=0.01",
        "--normalization=unit",
        "--log_every=1",
    )
    model = load_model(run_dir / "model.keras")
    assert len(model.outputs) == 1 and model.output_shape == (None, 3)


def test_tensorboard_gets_scalars_and_sample_images(mirrored_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = mirrored_run
    acc = EventAccumulator(str(run_dir / "logs"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = set(acc.Tags()["tensors"])
    assert {"train/loss", "learning_rate", "images_per_second", "epoch/val_top1", "train/inputs"} <= tags
