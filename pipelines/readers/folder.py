"""Any image folder: root/<label>/*.{jpg,jpeg,png,webp}, or root/<split>/<label>/... ."""

from __future__ import annotations

import os

import tensorflow as tf

from pipelines.readers.base import Record

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
KNOWN_SPLITS = ("train", "validation", "val", "test")


def _images(d: str) -> list[str]:
    return sorted(n for n in tf.io.gfile.listdir(d) if n.lower().endswith(IMAGE_EXTENSIONS))


def _subdirs(d: str) -> list[str]:
    return sorted(n.rstrip("/") for n in tf.io.gfile.listdir(d) if tf.io.gfile.isdir(os.path.join(d, n)))


def read_image_folder(root: str) -> list[Record]:
    """Records keyed by their path relative to `root` (deterministic and unique).

    Raises ValueError if `root` is missing or a class folder holds no image file.
    """
    if not tf.io.gfile.isdir(root):
        raise ValueError(f"input folder {root} does not exist")
    top = _subdirs(root)
    presplit = bool(top) and all(t in KNOWN_SPLITS for t in top)
    layouts = [(t, os.path.join(root, t)) for t in top] if presplit else [("", root)]
    records, empty = [], []
    for split, base in layouts:
        for label in _subdirs(base):
            names = _images(os.path.join(base, label))
            if not names:
                empty.append("/".join(p for p in (split, label) if p))
            for name in names:
                rel = "/".join(p for p in (split, label, name) if p)
                records.append(Record(key=rel, path=os.path.join(base, label, name), label=label,
                                      source=os.path.join(base, label, name),
                                      split={"val": "validation"}.get(split, split)))
    if empty:  # a class the job could only silently drop: say so before any work
        raise ValueError(f"class folder(s) with no {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} image in "
                         f"{root}: {', '.join(e + '/' for e in empty)}")
    return records
