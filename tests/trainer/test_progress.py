"""What a training run shows while it works: its phases with their time, the resume point, and per
epoch step lines with an ETA (off a terminal) or a tqdm bar (on one)."""

from __future__ import annotations

import io
import logging as std_logging
import sys
import time

import pytest

from tests.conftest import logged, run_cli
from trainer.progress import Progress

TINY = [
    "--model=cifar_resnet20",
    "--image_size=32",
    "--batch_size=8",
    "--log_every=2",
    "--normalization=dataset",
    "--skip_export",
    "--strategy=one_device",
]
PHASES = ("starting TensorFlow: ", "reading metadata: ", "dataset statistics: ", "building the model: ")


def test_phases_resume_and_step_lines_off_a_terminal(caplog):
    caplog.set_level(std_logging.INFO, logger="absl")
    progress = Progress(log_every=2, interactive=False)
    with progress.phase("reading metadata") as phase:
        phase.note = "3 classes"
    progress.resumed(7, 120)
    bar = progress.epoch(7, 30, 124, 120)
    rates = [bar.update(8, 1.5, 0.25, 0.01, global_step=s) for s in (841, 842, 843, 844)]
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("reading metadata: 0.0s (3 classes)")
    assert lines[1] == "resumed at epoch 7 step 120"
    assert [r is not None for r in rates] == [False, True, False, True]  # every --log_every global steps
    assert lines[2].startswith("epoch 7/30 step 122/124 loss 1.5000 top1 0.2500 lr 0.01 ") and " eta 0:0" in lines[2]
    assert lines[3].startswith("epoch 7/30 step 124/124 ") and lines[3].endswith("eta 0:00")


def test_a_terminal_gets_a_tqdm_bar_with_rate_loss_and_top1(monkeypatch, caplog):
    caplog.set_level(std_logging.INFO, logger="absl")
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    bar = Progress(log_every=1, interactive=True).epoch(1, 2, 3, 0)
    for s in (1, 2, 3):
        time.sleep(0.15)  # tqdm redraws at most every 0.1 s
        bar.update(8, 0.5, 0.75, 0.1, global_step=s)
    bar.close()
    text = out.getvalue()
    assert "epoch 1/2" in text and "img/s loss 0.5000 top1 0.7500" in text and "\r" in text
    assert not [r for r in caplog.records if "step" in r.getMessage()]  # the bar instead of step lines


@pytest.mark.slow
def test_a_real_run_names_its_phases_and_where_it_resumed_without_control_characters(tfrecords_dir, tmp_path):
    argv = ["trainer.train", f"--data_dir={tfrecords_dir}", f"--run_dir={tmp_path / 'run'}", *TINY]
    first = run_cli(*argv, "--epochs=1").stderr
    for phase in (*PHASES, "input pipeline: ", "first step (tracing): "):
        assert logged(phase, first), first[-3000:]
    assert "dataset statistics: 0.0s (--normalization=dataset: the dataset's channel_stats: " in first
    assert " eta " in first and logged("epoch 1/1: loss ", first)
    assert "\r" not in first and "\x1b[" not in first  # not a terminal: plain lines, no tqdm
    again = run_cli(*argv, "--epochs=2").stderr
    assert logged("resumed at epoch 2 step 0", again), again[-3000:]
    assert "(--normalization=dataset: the run's preprocessing.json)" in again
