"""Per-channel mean and std of the train split: exact sums, any order, written into stats.json and
TFDS's metadata.json by the job, and shown by inspect_dataset."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from PIL import Image

from pipelines import build_tfrecords, channel_stats, inspect_dataset
from tests.pipelines.conftest import IN_PROCESS, run_main


def test_sums_are_exact_and_do_not_depend_on_the_order():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (int(rng.integers(5, 40)), 17, 3), np.uint8) for _ in range(30)]
    parts = [channel_stats.of_image(im) for im in images]
    shuffled = parts[:]
    random.Random(1).shuffle(shuffled)
    halves = channel_stats.add(channel_stats.total(shuffled[:11]), channel_stats.total(shuffled[11:]))
    assert channel_stats.total(parts) == halves
    got = channel_stats.summary(halves)
    flat = np.concatenate([im.reshape(-1, 3) for im in images]).astype(np.float64)
    assert got["images"] == 30 and got["pixels"] == flat.shape[0] and got["split"] == "train"
    np.testing.assert_allclose(got["mean"], flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(got["std"], flat.std(0), rtol=1e-9)


def test_no_train_image_no_statistics_and_channel_counts_must_agree():
    assert channel_stats.summary(channel_stats.total([])) is None
    gray = channel_stats.of_image(np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ValueError, match="1 and 3 channels"):
        channel_stats.add(gray, channel_stats.of_image(np.zeros((4, 4, 3), np.uint8)))


TRAIN = {"cats": (200, 100, 50), "dogs": (10, 20, 30)}  # two solid images each
TEST = {"cats": (255, 255, 255), "dogs": (0, 0, 0)}  # not counted


@pytest.fixture(scope="module")
def solid(tmp_path_factory):
    root = tmp_path_factory.mktemp("solid")
    for split, colours in (("train", TRAIN), ("test", TEST)):
        for label, colour in colours.items():
            (root / "in" / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 20), colour).save(root / "in" / split / label / f"{i}.png")
    rc = run_main(
        build_tfrecords.main,
        f"--input_dir={root / 'in'}",
        f"--output_dir={root / 'out'}",
        "--dataset_name=solid",
        "--image_size=16",
        "--keep_input_splits",
        "--dedup=off",
        "--encoding=png",
        *IN_PROCESS,
    )
    assert rc == 0
    return root / "out" / "solid" / "1.0.0"


@pytest.mark.slow
def test_the_job_writes_the_train_splits_exact_channel_stats(solid, capsys):
    want = {
        "split": "train",
        "images": 4,
        "pixels": 4 * 16 * 16,
        "mean": [105.0, 60.0, 40.0],
        "std": [95.0, 40.0, 10.0],
    }
    assert json.loads((solid / "stats.json").read_text())["channel_stats"] == want
    import tensorflow_datasets as tfds

    assert tfds.builder_from_directory(str(solid)).info.metadata["channel_stats"] == want
    capsys.readouterr()
    assert run_main(inspect_dataset.main, str(solid), "--examples=0") == 0
    assert (
        "channel stats (train: 4 images, 1024 pixels per channel): mean 105.00 60.00 40.00, std 95.00 40.00 10.00"
        in capsys.readouterr().out
    )
