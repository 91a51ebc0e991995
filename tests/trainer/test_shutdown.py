"""The SIGTERM deadline: after the signal, the process ends within the grace period even when
its main thread never comes back (a training step that hangs), keeping the last checkpoint."""

import signal
import subprocess
import sys
import time

HANGS_AFTER_SIGTERM = """
import signal, threading, sys
from trainer import shutdown
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # the trainer's handler: a flag, read after the step
with shutdown.StopWatchdog(grace_seconds=1.0, last_checkpoint=lambda: "ckpt-7"):
    print("stepping", flush=True)
    threading.Event().wait()  # a step that never returns
"""


def test_a_step_that_never_returns_after_sigterm_is_cut_off_at_the_grace_period():
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGS_AFTER_SIGTERM], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "stepping"
    proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    _, err = proc.communicate(timeout=30)
    seconds = time.monotonic() - signalled
    assert proc.returncode == 143, err
    assert 1.0 <= seconds < 6, seconds
    assert "did not finish within 1s of SIGTERM" in err and "ckpt-7" in err, err


def test_the_watchdog_stands_down_when_the_work_ends_without_a_signal():
    code = (
        "from trainer import shutdown\n"
        "with shutdown.StopWatchdog(grace_seconds=1.0, last_checkpoint=lambda: None):\n"
        "    pass\n"
        "import time; time.sleep(2); print('still here', flush=True)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "still here" in proc.stdout, proc.stderr
