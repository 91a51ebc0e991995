"""What the pipelines' programs show: libraries' INFO lines and TensorFlow's C++ banners held back,
the program's own lines and warnings shown, progress lines."""

from __future__ import annotations

import logging as std_logging
import subprocess
import sys
import textwrap

import pytest
from absl import logging

from pipelines import console


def _record(level: int, pathname: str, message: str) -> std_logging.LogRecord:
    return std_logging.LogRecord("absl", level, pathname, 1, message, (), None)


LIBRARY = "/venv/lib/python3.11/site-packages/tensorflow_datasets/core/reader.py"


@pytest.mark.parametrize(
    "level,pathname,message,shown",
    [
        (std_logging.INFO, console.__file__.replace("console.py", "build.py"), "job: started", True),
        (std_logging.INFO, LIBRARY, "Creating a tf.data.Dataset reading 1 files", False),
        (std_logging.WARNING, LIBRARY, "a library's warning", True),
        (std_logging.ERROR, LIBRARY, "a library's error", True),
        (
            std_logging.WARNING,
            "/x/apache_beam/options/pipeline_options.py",
            "Discarding unparseable args: ['--x']",
            False,
        ),
        (std_logging.WARNING, "/x/apache_beam/utils/logger.py", "Unparseable argument: --x. Did you mean", True),
        (std_logging.ERROR, "/x/apache_beam/runners/worker/worker_handlers.py", "Worker: Traceback ...", False),
    ],
)
def test_quiet_libraries_keeps_the_programs_lines_and_every_warning(level, pathname, message, shown):
    quiet = console.QuietLibraries()
    old = logging.get_verbosity()
    try:
        logging.set_verbosity(logging.INFO)
        assert quiet.filter(_record(level, pathname, message)) is shown
        logging.set_verbosity(logging.DEBUG)  # -v 1: everything
        assert quiet.filter(_record(level, pathname, message))
    finally:
        logging.set_verbosity(old)


_HELD = textwrap.dedent("""
    import os, sys
    from pipelines import console
    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
        b"I0000 00:00:1796457875.452382   29948 port.cc:153] oneDNN custom operations are on.\\n"
        b"E0000 00:00:1796457877.301659   29948 cuda_platform.cc:52] failed call to cuInit: INTERNAL\\n"
    )
    try:
        with console.held_stderr():
            os.write(2, noise + b"a worker's real message\\n")
            print("live line", file=sys.stderr)
            if sys.argv[1] == "fail":
                raise RuntimeError("the job failed")
    except RuntimeError:
        print("error: one line", file=sys.stderr)
""")


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_held_stderr_plays_back_what_matters_after_the_programs_own_lines(outcome):
    proc = subprocess.run(
        [sys.executable, "-c", _HELD, outcome], capture_output=True, text=True, timeout=60, check=True
    )
    if outcome == "ok":
        assert proc.stderr == "live line\na worker's real message\n"
    else:  # the workers' output is dropped: the driver says what failed in one line
        assert proc.stderr == "live line\nerror: one line\n"


def test_track_logs_a_line_per_interval_off_a_terminal(caplog):
    caplog.set_level(std_logging.INFO, logger="absl")
    assert list(console.track(range(3), "merging dead letters", 3, "files", interval=0)) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"merging dead letters: {n} of 3 files so far" for n in (1, 2, 3)]
