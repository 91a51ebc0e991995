"""The trainer's terminal is quiet by default: no TensorFlow C++ banners, no libraries' INFO lines
(MirroredStrategy's per-step "Reduce to ... then broadcast"); `-v 1` shows them all."""

from __future__ import annotations

import logging as std_logging
import os
import re
import time

import pytest
from absl import logging

from cli.console import QuietLibraries
from tests.conftest import logged, run_cli
from trainer import console

TF = "/venv/lib/python3.11/site-packages/tensorflow/python/distribute/cross_device_ops.py"
REDUCE = "Reduce to /job:localhost/replica:0/task:0/device:CPU:0 then broadcast to ('/job:localhost/...')."


def _record(level, pathname, message):
    return std_logging.LogRecord("absl", level, pathname, 1, message, (), None)


@pytest.mark.parametrize(
    "level,pathname,message,shown",
    [
        (std_logging.INFO, TF, REDUCE, False),
        (std_logging.INFO, console.__file__.replace("console.py", "progress.py"), "reading metadata: 0.1s", True),
        (std_logging.WARNING, TF, "a library's warning", True),
    ],
)
def test_libraries_info_is_dropped_the_trainers_lines_and_warnings_stay(level, pathname, message, shown):
    old = logging.get_verbosity()
    try:
        logging.set_verbosity(logging.INFO)
        assert QuietLibraries().filter(_record(level, pathname, message)) is shown
        logging.set_verbosity(logging.DEBUG)  # -v 1
        assert QuietLibraries().filter(_record(level, pathname, message))
    finally:
        logging.set_verbosity(old)


def test_log_lines_are_short_unless_verbose():
    from cli.console import ShortFormat

    fmt = ShortFormat(logging.PythonFormatter())
    info = _record(std_logging.INFO, "/x/trainer/progress.py", "first step (tracing): 9.2s")
    warning = _record(std_logging.WARNING, "/x/trainer/loop.py", "NaN loss at step 3")
    clock = time.strftime("%H:%M:%S", time.localtime(info.created))
    old = logging.get_verbosity()
    try:
        logging.set_verbosity(logging.INFO)
        assert fmt.format(info) == f"{clock} first step (tracing): 9.2s"
        assert fmt.format(warning).endswith(" warning: NaN loss at step 3")
        logging.set_verbosity(logging.DEBUG)  # -v 1: absl's own line, with level, thread and source line
        assert re.fullmatch(r"I\d{4} [\d:.]+ +\d+ progress.py:1\] first step \(tracing\): 9.2s", fmt.format(info))
    finally:
        logging.set_verbosity(old)


def test_quiet_turns_tensorflows_cpp_logs_down_unless_verbose_or_set(monkeypatch):
    old = logging.get_verbosity()
    try:
        logging.set_verbosity(logging.INFO)
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
        console.quiet()
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == console.QUIET_CPP_LEVEL
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # the user's own choice stays
        console.quiet()
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
        logging.set_verbosity(logging.DEBUG)
        console.quiet()
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    finally:
        logging.set_verbosity(old)


NOISE = ("Reduce to /job:localhost", "oneDNN custom operations", "cuInit", "before absl::InitializeLog")


@pytest.mark.slow
def test_a_mirrored_run_is_quiet_by_default_and_tells_all_with_v1(tfrecords_dir, tmp_path):
    argv = [
        "trainer.train",
        f"--data_dir={tfrecords_dir}",
        "--model=cifar_resnet20",
        "--image_size=32",
        "--batch_size=8",
        "--epochs=1",
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--normalization=unit",
        "--skip_export",
    ]
    env = {"TF_CPP_MIN_LOG_LEVEL": ""}  # the test's own environment must not decide
    quiet = run_cli(*argv, f"--run_dir={tmp_path / 'quiet'}", env=env).stderr
    assert not [n for n in NOISE if n in quiet], quiet[-3000:]
    assert logged("first step (tracing): ", quiet) and logged("epoch 1/1: loss ", quiet)
    loud = run_cli(*argv, f"--run_dir={tmp_path / 'loud'}", "-v", "1", env=env).stderr
    assert "Reduce to /job:localhost" in loud and "progress.py:56] first step (tracing): " in loud  # absl's format
