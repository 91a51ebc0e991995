"""Benchmark datasets, generated once and kept in a cache folder between runs."""

from __future__ import annotations

import os
import subprocess
import sys


def make_folder(root: str, n: int, size: int) -> str:
    """n synthetic flower JPEGs (20 classes) of size x size under root/<class>/."""
    from crawler.classes import CLASS_NAMES
    from crawler.flowersite.render import render_flower

    marker = os.path.join(root, f".done-{n}-{size}")
    if os.path.exists(marker):
        return root
    for i in range(n):
        c = CLASS_NAMES[i % len(CLASS_NAMES)]
        os.makedirs(os.path.join(root, c), exist_ok=True)
        render_flower(c, i, size=(size, size)).save(os.path.join(root, c, f"{i:05d}.jpg"), quality=90)
    open(marker, "w").close()
    return root


def make_tfrecords(folder: str, out: str, size: int) -> str:
    data_dir = os.path.join(out, "bench", "1.0.0")
    if not os.path.exists(os.path.join(data_dir, "dataset_info.json")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipelines.build_tfrecords",
                f"--input_dir={folder}",
                f"--output_dir={out}",
                "--dataset_name=bench",
                f"--image_size={size}",
                "--resize=stretch",
                "--splits=train:0.9,validation:0.05,test:0.05",
                "--num_shards=4",
                "--overwrite",
            ],
            check=True,
            capture_output=True,
        )
    return data_dir
