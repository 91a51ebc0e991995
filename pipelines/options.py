"""The Beam job's options: one typed, frozen value, filled from the flags by build_tfrecords and
recorded in stats.json (`options`, `augment`)."""

from __future__ import annotations

import dataclasses

from pipelines import image_ops, shards
from storage import fs


@dataclasses.dataclass(frozen=True)
class JobOptions:
    output_dir: str
    dataset_name: str
    version: str = "1.0.0"
    splits: str = "train:0.8,validation:0.1,test:0.1"
    keep_input_splits: bool = False
    split_salt: str = "flowerpipe"
    image_size: int = 224
    resize: str = "pad"
    channels: int = 3
    augment_copies: int = 0
    augment: image_ops.AugmentParams = image_ops.AugmentParams()
    seed: int = 0
    encoding: str = "jpeg"
    jpeg_quality: int = 90
    shard_size_mb: float = shards.DEFAULT_SHARD_SIZE_MB
    num_shards: int = 0
    min_side: int = 16
    max_pixels: int = 40_000_000
    max_bad_fraction: float = 0.2
    dedup: str = "group"  # a mode of pipelines.dedup.MODES
    dedup_distance: int = 6  # perceptual-hash bits (of 64) at or below which two images are near duplicates
    overwrite: bool = False
    layout: str = "tfds"  # a key of schema.LAYOUTS
    compression: str = ""  # "" or "gzip" (TFDS cannot read gzip: then no TFDS metadata is written)

    @property
    def fixed_size(self) -> int | None:
        """The side of every written image, or None when `resize=keep` leaves sizes as they were."""
        return None if self.resize == "keep" else self.image_size

    @property
    def final_dir(self) -> str:
        return fs.join(self.output_dir, self.dataset_name, self.version)
