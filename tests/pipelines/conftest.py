"""Helpers for the pipeline tests: programs run in this process, and tiny generated image folders."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from absl import flags
from absl.testing import flagsaver
from PIL import Image


def run_main(main, *argv: str) -> int:
    """Runs an absl program's `main` here (no new process, no TF import): flags parsed, then restored."""
    with flagsaver.flagsaver():
        rest = flags.FLAGS(["prog", *argv], known_only=True)
        return main(rest)


@contextlib.contextmanager
def parsed_flags(*argv: str):
    """absl flags parsed from argv inside the block, restored after it."""
    with flagsaver.flagsaver():
        flags.FLAGS(["prog", *argv], known_only=True)
        yield


def jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_image_folder(root, classes=("cats", "dogs"), per_class=6, seed=0):
    """root/<class>/<i>.jpg: small noisy images, one colour per class."""
    rng = np.random.default_rng(seed)
    for c, label in enumerate(classes):
        d = root / label
        d.mkdir(parents=True)
        for i in range(per_class):
            colour = ((70 * c + 40) % 255, 120, (255 - 60 * c) % 255)
            arr = np.clip(rng.normal(colour, 25, (30 + i, 40, 3)), 0, 255).astype(np.uint8)
            (d / f"{i:02d}.jpg").write_bytes(jpeg(arr))
    return root


IN_PROCESS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
