"""The folder lock: one holder at a time (another process is refused, naming the owner), taken
over when its owner is dead or silent, released however the block ends; on every store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from storage import fs, lock

_HOLDER = textwrap.dedent("""
    import sys, time
    from storage import lock
    with lock.hold(sys.argv[1], "holder"):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_live_holder_in_another_process_is_refused_naming_it(any_store):
    folder = fs.join(any_store, "data")
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, folder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(lock.LockHeld) as e, lock.hold(folder, "crawl"):
            pass
        msg = str(e.value)
        assert f"pid {proc.pid} on {socket.gethostname()}" in msg and "another holder" in msg
        assert fs.join(folder, lock.NAME) in msg and "\n" not in msg
    finally:
        proc.kill()
        proc.wait()
    # killed with -9: its lock file stays, names a dead pid, and is taken over
    assert json.loads(fs.read_bytes(fs.join(folder, lock.NAME)))["pid"] == proc.pid
    with lock.hold(folder, "crawl"):
        assert json.loads(fs.read_bytes(fs.join(folder, lock.NAME)))["what"] == "crawl"
    assert not fs.exists(fs.join(folder, lock.NAME))


def test_released_when_the_block_raises_and_a_second_holder_in_one_process_is_refused(tmp_path):
    folder = str(tmp_path)
    with pytest.raises(RuntimeError), lock.hold(folder, "build"):
        with pytest.raises(lock.LockHeld), lock.hold(folder, "build"):  # the same process asking twice: no re-entry
            pass
        raise RuntimeError("boom")
    assert not (tmp_path / lock.NAME).exists()


def test_stale_when_the_owner_is_gone_or_silent():
    host, now = socket.gethostname(), time.time()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    import os

    assert lock.stale_reason({"host": host, "pid": os.getpid(), "heartbeat": now}, now) == ""
    assert "no longer runs" in lock.stale_reason({"host": host, "pid": dead_pid, "heartbeat": now}, now)
    # another machine: its pid means nothing here, only its heartbeat counts
    assert lock.stale_reason({"host": "elsewhere", "pid": dead_pid, "heartbeat": now - 10}, now) == ""
    assert "heartbeat" in lock.stale_reason({"host": "elsewhere", "pid": 1, "heartbeat": now - 1000}, now)
    assert "unreadable" in lock.stale_reason({}, now)


def test_a_torn_lock_file_is_taken_over(tmp_path):
    (tmp_path / lock.NAME).write_bytes(b'{"host": "x", "pi')  # killed while writing it
    with lock.hold(str(tmp_path), "crawl"):
        assert json.loads((tmp_path / lock.NAME).read_bytes())["what"] == "crawl"
