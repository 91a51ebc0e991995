"""Publishing a finished build as <dataset>/<version>/: a reader, or a crash, sees the old version
or the new one, never a mixture; a later build finishes what a killed one left.

In <output_dir>/<dataset>/:
    .lock-<version>                 the version's lock (storage.lock): one build of it at a time
    .incomplete-<version>-<id>/     a build's output while it runs (removed if the build fails)
    .publishing-<version>.json      a publish in progress: {"new": ..., "old": ..., "phase": ...}
    .old-<version>-<id>/            the version being replaced, until the new one is in

Publishing, once the new folder is complete: (1) write the intent, phase `aside`; (2) move
<version>/ (if any) to .old-*; (3) phase `in`; (4) move the new folder to <version>/;
(5) delete .old-*; (6) delete the intent. On a local disk each move is one rename of a
folder (atomic). On an object store each is a copy and a delete per file; dataset_info.json
(what makes TFDS see a dataset) leaves first and arrives last, so a reader sees the old
version, the new one, or between the two no dataset at all (try again), never a mixture.

`recover`, run by every build of that version under its lock before any work: an intent
file means a publish was killed after the new folder was complete, so it is finished
(from its phase on); then every .incomplete-<version>-* and .old-<version>-* that no
intent names (left by killed builds) is deleted. Each step it takes is logged.
"""

from __future__ import annotations

import uuid

from absl import logging

from storage import fs

TFDS_INFO = "dataset_info.json"


def lock_name(version: str) -> str:
    return f".lock-{version}"


def _intent_path(dataset_dir: str, version: str) -> str:
    return fs.join(dataset_dir, f".publishing-{version}.json")


def incomplete_dir(dataset_dir: str, version: str) -> str:
    """A new, unique folder for a build's output."""
    return fs.join(dataset_dir, f".incomplete-{version}-{uuid.uuid4().hex[:8]}")


def _move_tree(src: str, dst: str) -> None:
    """Moves a folder's files under `dst`; running it again after a kill finishes the move."""
    if fs.is_local(src):
        if fs.exists(src):
            fs.rename(src, dst)  # one atomic rename (dst does not exist)
        return
    names = fs.list_files(src)
    leaving = dst.rstrip("/").split("/")[-1].startswith(".old-")
    # dataset_info.json: first out of the published folder, last into it
    for rel in sorted(names, key=lambda n: (n == TFDS_INFO) != leaving):
        fs.rename(fs.join(src, rel), fs.join(dst, rel))


def _run(dataset_dir: str, version: str, intent: dict) -> None:
    """Steps (2)-(6) from the intent's phase on."""
    final, path = fs.join(dataset_dir, version), _intent_path(dataset_dir, version)
    if intent["phase"] == "aside":
        _move_tree(final, fs.join(dataset_dir, intent["old"]))
        intent = {**intent, "phase": "in"}
        fs.write_json(path, intent)
    _move_tree(fs.join(dataset_dir, intent["new"]), final)
    fs.rmtree(fs.join(dataset_dir, intent["new"]))  # an object store keeps no empty folder; a disk may
    fs.rmtree(fs.join(dataset_dir, intent["old"]))
    fs.delete(path)


def publish(new_dir: str, dataset_dir: str, version: str) -> None:
    """Replaces <dataset_dir>/<version>/ with the complete folder `new_dir` (see the module docstring)."""
    intent = {"new": fs.basename(new_dir), "old": f".old-{version}-{uuid.uuid4().hex[:8]}", "phase": "aside"}
    fs.write_json(_intent_path(dataset_dir, version), intent)
    _run(dataset_dir, version, intent)


def recover(dataset_dir: str, version: str) -> list[str]:
    """Finishes a killed publish and deletes what killed builds left; returns what it did (also logged).
    Call it holding the version's lock."""
    done = []
    path = _intent_path(dataset_dir, version)
    if fs.exists(path):
        intent = fs.read_json(path)
        _run(dataset_dir, version, intent)
        done.append(
            f"finished publishing {fs.join(dataset_dir, version)} (a publish was killed in phase "
            f"{intent['phase']!r}; the new version is complete)"
        )
    if fs.isdir(dataset_dir):
        for name in fs.listdir(dataset_dir):
            if name.startswith((f".incomplete-{version}-", f".old-{version}-")):
                fs.rmtree(fs.join(dataset_dir, name))
                done.append(f"deleted {fs.join(dataset_dir, name)} (left by a killed build)")
    for line in done:
        logging.warning("%s", line)
    return done
