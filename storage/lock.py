"""One writer at a time in a folder: an exclusive lock file with its owner, taken over when stale.

    with lock.hold(out_dir, "crawl"):
        ...   # no other crawl can write into out_dir meanwhile

The lock is the file `<folder>/.lock` (or another name in the folder), a JSON object: `host`, `pid`,
`what` (the program), `since`, `heartbeat` (renewed every HEARTBEAT_SECONDS by a daemon thread while held) and a
random `token`. It is released (deleted, if still ours) when the block ends, however it ends.

Taking it:
- local disk: created with O_CREAT|O_EXCL, which the operating system makes atomic;
- object store (gs://, s3://): no conditional create is reachable through Beam's
  filesystems, so it is written when absent and read back; the token must be ours. Two
  processes that both look in the same ~0.1 s can both win: the lock is a guard against
  the usual mistake (a second command into a folder in use), not a distributed mutex.

A lock is stale, and taken over with a warning naming its owner, when its owner ran on
this host and that pid is gone (a kill -9), or when its heartbeat is older than
STALE_SECONDS (an owner on another machine, or a reused pid). Otherwise `LockHeld` (a
StorageError: exit 2 in every program) names the owner and what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

from absl import logging

from storage import fs
from storage.fs import StorageError

NAME = ".lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 180.0


class LockHeld(StorageError):
    """Another live process holds the folder."""

    def __init__(self, folder: str, owner: dict, path: str = ""):
        age = time.time() - float(owner.get("heartbeat", 0))
        super().__init__(
            folder,
            f"in use by another {owner.get('what', 'process')} (pid {owner.get('pid')} on "
            f"{owner.get('host')}, since {_when(owner.get('since'))}, alive {age:.0f} s ago): "
            f"wait for it to end, or delete {path or fs.join(folder, NAME)} if that process is gone",
        )
        self.owner = owner


def _when(t) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError):
        return "?"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def stale_reason(owner: dict, now: float | None = None) -> str:
    """Why `owner`'s lock may be taken over ('' if it may not): a pure function of the lock and the clock."""
    now = time.time() if now is None else now
    try:
        pid, beat = int(owner["pid"]), float(owner["heartbeat"])
    except (KeyError, TypeError, ValueError):
        return "its lock file is unreadable"
    if owner.get("host") == socket.gethostname() and not _pid_alive(pid):
        return f"pid {pid} no longer runs on this host"
    if now - beat > STALE_SECONDS:
        return f"its heartbeat is {now - beat:.0f} s old (> {STALE_SECONDS:.0f} s)"
    return ""


class _Lock:
    def __init__(self, folder: str, what: str, name: str = NAME):
        self.folder, self.path = folder, fs.join(folder, name)
        self.owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "what": what,
            "since": time.time(),
            "token": uuid.uuid4().hex,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return (json.dumps({**self.owner, "heartbeat": time.time()}, sort_keys=True) + "\n").encode()

    def _read(self) -> dict | None:
        try:
            data = fs.read_bytes(self.path)
        except FileNotFoundError:
            return None
        try:
            owner = json.loads(data)
            return owner if isinstance(owner, dict) else {}
        except ValueError:  # torn by a kill mid-write (local), or not ours
            return {}

    def _create(self) -> bool:
        """Creates the lock file if there is none; True if this process now holds it."""
        if fs.is_local(self.path):
            os.makedirs(self.folder, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(self._body())
            return True
        if fs.exists(self.path):
            return False
        fs.write_bytes(self.path, self._body())
        time.sleep(0.05)  # let a racing writer's object land before reading back
        owner = self._read()
        return bool(owner) and owner.get("token") == self.owner["token"]

    def acquire(self) -> None:
        for _ in range(3):
            if self._create():
                break
            owner = self._read()
            if owner is None:  # released meanwhile
                continue
            reason = stale_reason(owner)
            if not reason:
                raise LockHeld(self.folder, owner, self.path)
            logging.warning(
                "%s: taking over the lock of %s pid %s on %s: %s",
                self.folder,
                owner.get("what", "?"),
                owner.get("pid"),
                owner.get("host"),
                reason,
            )
            fs.delete(self.path)
        else:
            raise LockHeld(self.folder, self._read() or {}, self.path)
        self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat {self.path}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):  # a store hiccup: the next beat tries again
                fs.write_bytes(self.path, self._body())

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            owner = self._read()
            if owner is not None and owner.get("token") == self.owner["token"]:
                fs.delete(self.path)


@contextlib.contextmanager
def hold(folder: str, what: str, name: str = NAME) -> Iterator[None]:
    """Holds the exclusive lock of `folder` for the block; raises LockHeld if a live process holds it.

    Args:
      folder: the folder (local or in a bucket) one writer at a time may change.
      what: the program, named in the message another process gets (e.g. 'crawl').
      name: the lock file's name in `folder` (several locks may share a folder: `.lock-1.0.0`).
    """
    lock = _Lock(folder, what, name)
    try:
        lock.acquire()
    except OSError as e:
        if isinstance(e, StorageError):
            raise
        raise StorageError(lock.path, os.strerror(e.errno) if e.errno else str(e), "take the lock") from e
    try:
        yield
    finally:
        lock.release()


__all__ = ["HEARTBEAT_SECONDS", "LockHeld", "NAME", "STALE_SECONDS", "hold", "stale_reason"]
