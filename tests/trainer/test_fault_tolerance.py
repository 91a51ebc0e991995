"""Fault tolerance and multi-worker training, each in real processes, on a local disk and on gs://
(the GCS emulator): data, run dir and checkpoints in a bucket, as on a cluster."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from storage import fs, jsonl
from tests.conftest import build_tfrecords, run_cli, strip_channel_stats

pytestmark = pytest.mark.slow

TINY = [
    "--model=cifar_resnet20",
    "--image_size=32",
    "--batch_size=8",
    "--optimizer=sgd",
    "--learning_rate=0.01",
    "--bn_momentum=0.9",
    "--log_every=1",
    "--normalization=unit",
    "--skip_export",
    "--augment_crop_pad=2",
]


@pytest.fixture(scope="module")
def two_shard_dir(crawled_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfrecords2")
    return build_tfrecords(crawled_dir, out, "two", "--num_shards=2", "--direct_running_mode=in_memory")


def train_argv(data_dir, run_dir, *extra):
    return [sys.executable, "-m", "trainer.train", f"--data_dir={data_dir}", f"--run_dir={run_dir}", *TINY, *extra]


def weights(run_dir, tmp_path):
    """The model variables of a run's latest checkpoint (fetched through the storage layer)."""
    local = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))
    folder = fs.join(str(run_dir), "checkpoints")
    for rel in fs.list_files(folder):
        fs.copy(fs.join(folder, rel), str(local / rel))
    reader = tf.train.load_checkpoint(str(local))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "model" in k}


def upload(local_dir, remote: str) -> str:
    for p in local_dir.iterdir():
        fs.write_bytes(fs.join(remote, p.name), p.read_bytes())
    return remote


def checkpoint_steps(run_dir) -> list[int]:
    folder = fs.join(str(run_dir), "checkpoints")
    names = fs.listdir(folder) if fs.isdir(folder) else []
    return sorted(
        int(n[len("ckpt-") : -len(".index")]) for n in names if n.startswith("ckpt-") and n.endswith(".index")
    )


def test_kill_9_on_gs_and_resume_gives_the_uninterrupted_local_weights(tfrecords_dir, gcs, tmp_path):
    """The run killed and resumed has its data, run dir and checkpoints in a bucket; the reference
    ran uninterrupted on a local disk from the same bytes: the weights must be the same."""
    flags = ["--epochs=2", "--checkpoint_every=2", "--deterministic", "--strategy=one_device"]
    straight = tmp_path / "straight"
    run_cli(*train_argv(tfrecords_dir, straight, *flags)[2:])
    data_dir, killed = upload(tfrecords_dir, fs.join(gcs, "data")), fs.join(gcs, "killed")
    proc = subprocess.Popen(train_argv(data_dir, killed, *flags), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and 4 not in checkpoint_steps(killed):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_done = checkpoint_steps(killed)
    total = jsonl.read_all(str(straight / "metrics.jsonl"))[-1]["step"]
    assert steps_done and steps_done[-1] < total, (steps_done, total)  # killed before the end
    run_cli(*train_argv(data_dir, killed, *flags)[2:])
    a, b = weights(straight, tmp_path), weights(killed, tmp_path)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _stderr_lines(proc) -> list[str]:
    """The lines of a running process's stderr, filled by a thread as they come."""
    lines: list[str] = []

    def read():
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_sigterm_on_a_mirrored_run_saves_a_checkpoint_and_exits_within_the_grace_period(tfrecords_dir, tmp_path):
    """Preemption gives ~30 s: from the signal to the end of the process (step in progress,
    checkpoint, exit) must fit well inside. The run resumes from the checkpoint it saved."""
    run_dir = tmp_path / "term"
    flags = ["--strategy=mirrored", "--cpu_replicas=2"]
    proc = subprocess.Popen(
        train_argv(tfrecords_dir, run_dir, "--epochs=50", *flags),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _stderr_lines(proc)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not any(" step 2/" in line for line in lines):
        time.sleep(0.05)  # training steps run (every step is logged): send it mid-epoch
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    proc.wait(timeout=120)
    seconds = time.monotonic() - signalled
    time.sleep(0.2)  # the reader thread's last lines
    err = "".join(lines)
    assert proc.returncode == 143, err[-3000:]
    assert seconds < 15, f"{seconds:.1f}s from SIGTERM to exit\n{err[-3000:]}"
    assert "SIGTERM: checkpoint saved at step" in err
    step = int(err.split("SIGTERM: checkpoint saved at step ")[1].split(";")[0])
    assert (run_dir / "checkpoints" / f"ckpt-{step}.index").exists()
    per_epoch = int(err.split(" step 2/")[1].split()[0])
    proc = run_cli(*train_argv(tfrecords_dir, run_dir, f"--epochs={step // per_epoch + 1}", *flags)[2:])
    assert f"at step {step}" in proc.stderr  # resumed from the checkpoint the signal saved


@pytest.fixture(scope="module")
def one_epoch_run(tfrecords_dir, tmp_path_factory):
    """A run dir after one good epoch, copied by the tests that go on from there."""
    run_dir = tmp_path_factory.mktemp("one-epoch") / "run"
    run_cli(*train_argv(tfrecords_dir, run_dir, "--epochs=1", "--strategy=one_device")[2:])
    return run_dir


def test_nan_loss_stops_with_the_step_named_and_the_checkpoint_intact(tfrecords_dir, one_epoch_run, tmp_path):
    run_dir = shutil.copytree(one_epoch_run, tmp_path / "nan")
    good = weights(run_dir, tmp_path)
    proc = run_cli(
        *train_argv(tfrecords_dir, run_dir, "--epochs=2", "--strategy=one_device", "--learning_rate=1e12")[2:],
        check=False,
    )
    assert proc.returncode == 3
    assert "loss is nan at step" in proc.stderr or "loss is inf at step" in proc.stderr, proc.stderr[-2000:]
    assert "--recover_from_nan" in proc.stderr
    after = weights(run_dir, tmp_path)
    for k in good:
        np.testing.assert_array_equal(good[k], after[k])


def test_resuming_on_a_dataset_rebuilt_with_another_class_order_is_refused(tfrecords_dir, one_epoch_run, tmp_path):
    """The dataset is rebuilt in place with the same classes in another order: label 0 now means
    another class. Resuming must stop (exit 2, one line naming the first difference and the ways
    out); with --force it goes on and labels.txt, preprocessing.json and dataset.json follow the
    new order. (The one-epoch run and its data are copied, the run's config pointed at the copy.)"""
    data, run_dir = tmp_path / "data", tmp_path / "run"
    shutil.copytree(tfrecords_dir, data)
    shutil.copytree(one_epoch_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["data_dir"] = str(data)
    (run_dir / "config.json").write_text(json.dumps(config))
    recorded = json.loads((run_dir / "dataset.json").read_text())
    assert recorded["class_names"] == ["daisy", "rose", "tulip"] and recorded["fingerprint"]
    (data / "label.labels.txt").write_text("rose\ndaisy\ntulip\n")  # what a rebuild with --class_names writes
    before = {n: (run_dir / n).read_text() for n in ("labels.txt", "preprocessing.json", "metrics.jsonl")}
    proc = run_cli(*train_argv(data, run_dir, "--epochs=2", "--strategy=one_device")[2:], check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("error: "), proc.stderr[-3000:]
    assert "class 0 is 'daisy' in the run and 'rose' in the data" in lines[-1], lines[-1]
    assert "--force" in lines[-1] and "--run_dir" in lines[-1]
    assert [line for line in lines if line.startswith("error")] == lines[-1:] and "Traceback" not in proc.stderr
    assert before == {n: (run_dir / n).read_text() for n in before}  # nothing trained, nothing rewritten
    proc = run_cli(*train_argv(data, run_dir, "--epochs=2", "--strategy=one_device", "--force")[2:])
    assert "class 0 is 'daisy' in the run and 'rose' in the data" in proc.stderr  # said as a warning
    assert (run_dir / "labels.txt").read_text().split() == ["rose", "daisy", "tulip"]
    assert json.loads((run_dir / "preprocessing.json").read_text())["class_names"] == ["rose", "daisy", "tulip"]
    assert json.loads((run_dir / "dataset.json").read_text())["class_names"] == ["rose", "daisy", "tulip"]
    assert [h["epoch"] for h in jsonl.read_all(str(run_dir / "metrics.jsonl"))] == [1, 2]


def test_recover_from_nan_rolls_back_with_a_lower_learning_rate(tfrecords_dir, one_epoch_run, tmp_path):
    run_dir = shutil.copytree(one_epoch_run, tmp_path / "recover")
    proc = run_cli(
        *train_argv(
            tfrecords_dir,
            run_dir,
            "--epochs=2",
            "--strategy=one_device",
            "--learning_rate=1e12",
            "--recover_from_nan",
            "--nan_lr_factor=1e-14",
        )[2:]
    )
    assert "rolled back to" in proc.stderr
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and np.isfinite(history[-1]["loss"])


def _flip_a_byte(shard):
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))


def _break_an_image(shard, index: int) -> str:
    """Cuts the JPEG of record `index` in half and writes the shard again with valid CRCs (what
    a buggy writer, not a bad disk, leaves); returns the record's key."""
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(shard))]
    example = tf.train.Example.FromString(records[index])
    image = example.features.feature["image"].bytes_list.value
    image[0] = image[0][: len(image[0]) // 2]
    records[index] = example.SerializeToString()
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for record in records:
            writer.write(record)
    return example.features.feature["key"].bytes_list.value[0].decode()


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_a_corrupt_shard_is_named_with_its_record(tfrecords_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tfrecords_dir, data)
    shard = next(data.glob("small-validation.tfrecord-*"))
    _flip_a_byte(shard)
    run_dir = tmp_path / "run"
    proc = run_cli(*train_argv(data, run_dir, "--epochs=1", "--strategy=one_device")[2:], check=False)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert f"file {shard.name}, record" in proc.stderr and "corrupt TFRecord in split 'validation'" in proc.stderr


def test_a_corrupt_shard_met_by_the_statistics_pass_is_named_with_its_record(tfrecords_dir, tmp_path):
    """A fresh run with --normalization=dataset on a dataset without channel_stats reads the
    training split before any training step: that read names the file and record too."""
    data = tmp_path / "data"
    shutil.copytree(tfrecords_dir, data)
    strip_channel_stats(data)  # else the statistics come from the metadata: no pass over the data
    shard = next(data.glob("small-train.tfrecord-*"))
    _flip_a_byte(shard)
    proc = run_cli(
        *train_argv(data, tmp_path / "run", "--epochs=1", "--strategy=one_device", "--normalization=dataset")[2:],
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = _one_error_line(proc.stderr)
    assert f"file {shard.name}, record" in line and "corrupt TFRecord in split 'train'" in line, line


@pytest.mark.parametrize("normalization", ["dataset", "unit"])  # met by the statistics pass / by training
def test_an_image_that_does_not_decode_is_named_with_its_record(tfrecords_dir, tmp_path, normalization):
    data = tmp_path / "data"
    shutil.copytree(tfrecords_dir, data)
    strip_channel_stats(data)  # "dataset": the statistics pass meets the image first
    shard = next(data.glob("small-train.tfrecord-*"))
    key = _break_an_image(shard, 7)
    proc = run_cli(
        *train_argv(data, tmp_path / "run", "--epochs=1", "--strategy=one_device", f"--normalization={normalization}")[
            2:
        ],
        check=False,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = _one_error_line(proc.stderr)
    assert f"file {shard.name}, record 7 (key " in line and key in line and "does not decode" in line, line


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_cluster(data_dir, run_dir, *extra):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(
            subprocess.Popen(
                train_argv(data_dir, run_dir, "--strategy=multi_worker", *extra),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def test_multi_worker_on_gs_checkpoints_the_cluster_at_one_step_on_sigterm_and_resumes(two_shard_dir, gcs):
    """A cluster as users run one: nothing shared but a bucket (data, run dir, checkpoints on gs://).
    SIGTERM on one worker stops both after the same step; started again, both resume from the
    chief's checkpoint and train to the end together."""
    data_dir, run_dir = upload(two_shard_dir, fs.join(gcs, "data")), fs.join(gcs, "mw-term")
    metrics = fs.join(run_dir, "metrics.jsonl")
    procs = _start_cluster(data_dir, run_dir, "--epochs=500")
    deadline = time.time() + 300
    while time.time() < deadline and not fs.exists(metrics):  # an epoch is done
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)  # the non-chief: the chief must learn of it and save too
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [143, 143], outs[0][1][-2000:] + outs[1][1][-2000:]
    steps = {int(err.split("SIGTERM: checkpoint saved at step ")[1].split(";")[0]) for _, err in outs}
    assert len(steps) == 1, steps  # both workers stopped after the same step
    (step,) = steps
    assert step in checkpoint_steps(run_dir)
    per_epoch = jsonl.read_all(metrics)[0]["step"]
    epochs = step // per_epoch + 1
    procs = _start_cluster(data_dir, run_dir, f"--epochs={epochs}")
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    assert all(f"at step {step}" in err for _, err in outs)  # both resumed from the chief's checkpoint
    report = fs.read_json(fs.join(run_dir, "report.json"))
    assert report["hardware"]["replicas"] == 2 and report["hardware"]["strategy"] == "MultiWorkerMirroredStrategy"
    history = jsonl.read_all(metrics)
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1)) and all(np.isfinite(h["loss"]) for h in history)
    assert "test top-1" in outs[0][0] and "test top-1" not in outs[1][0]  # only the chief reports
    assert not os.path.exists("gs:")


def test_one_device_and_mirrored_give_the_same_loss_curve(tfrecords_dir, tmp_path):
    """One loop for every strategy: with synchronised BatchNorm, 2 logical CPUs compute what
    one device computes on the same global batch. Compared over one epoch: float reduction
    order differs between the two, and small differences grow chaotically over more steps."""
    curves = {}
    for name, flags in (("one", ["--strategy=one_device"]), ("mirrored", ["--strategy=mirrored", "--cpu_replicas=2"])):
        run_dir = tmp_path / name
        run_cli(*train_argv(tfrecords_dir, run_dir, "--epochs=1", "--deterministic", "--sync_bn", *flags)[2:])
        curves[name] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (a,), (b,) = curves["one"], curves["mirrored"]
    assert a["loss"] == pytest.approx(b["loss"], rel=2e-3)
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=2e-2)  # through the moving BN statistics


def test_reduce_on_plateau_state_survives_a_resume(tfrecords_dir, tmp_path):
    from trainer.optim import PlateauController

    run_dir = tmp_path / "plateau"
    # A tiny LR and frozen BatchNorm statistics: the validation loss cannot improve, every epoch decays.
    flags = [
        "--strategy=one_device",
        "--schedule=plateau",
        "--plateau_patience=1",
        "--plateau_factor=0.5",
        "--learning_rate=1e-7",
        "--bn_momentum=1.0",
    ]
    run_cli(*train_argv(tfrecords_dir, run_dir, "--epochs=2", *flags)[2:])
    run_cli(*train_argv(tfrecords_dir, run_dir, "--epochs=3", *flags)[2:])  # resumes at epoch 3
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    replay = PlateauController(0.5, 1)
    expected = [1e-7]
    for h in history[:-1]:
        expected.append(1e-7 * replay.update(h["val_loss"]))
    assert [h["lr"] for h in history] == pytest.approx(expected, rel=1e-6)
    assert history[-1]["lr"] < 1e-7  # decayed before the resume, and still after it
