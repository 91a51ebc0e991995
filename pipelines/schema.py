"""The TFRecord example layout: the one definition both the Beam job and the trainer use.

The layout is a TFDS `FeaturesDict`, so a folder of our shards plus the metadata written by
`tfds.folder_dataset.write_metadata` loads with `tfds.builder_from_directory`:

    image       tfds.features.Image   encoded JPEG or PNG bytes, 3 channels (or 1 for grayscale sets)
    label       tfds.features.ClassLabel(names=...)  int64 index into the class names
    key         tfds.features.Text    unique, deterministic id ('<class>/<sha256>', '<file path>', ...)
    parent_key  tfds.features.Text    for offline augmented copies: the original's key; '' otherwise
    source      tfds.features.Text    provenance: the crawled URL, the file path, or 'tfds:<name>'

Bump `LAYOUT_VERSION` when this changes; it is written into every dataset's metadata.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer

LAYOUT_VERSION = 1
IMAGE, LABEL, KEY, PARENT_KEY, SOURCE = "image", "label", "key", "parent_key", "source"
SUPERVISED_KEYS = (IMAGE, LABEL)
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


def features(class_names: Sequence[str], channels: int = 3, encoding: str = "jpeg") -> tfds.features.FeaturesDict:
    """The FeaturesDict of a dataset with these classes."""
    return tfds.features.FeaturesDict({
        IMAGE: tfds.features.Image(shape=(None, None, channels), encoding_format=encoding),
        LABEL: tfds.features.ClassLabel(names=list(class_names)),
        KEY: tfds.features.Text(),
        PARENT_KEY: tfds.features.Text(),
        SOURCE: tfds.features.Text(),
    })


def serialize(feats: tfds.features.FeaturesDict, *, image: bytes, label: int, key: str, parent_key: str = "",
              source: str = "") -> bytes:
    """One serialized tf.train.Example; `image` is already-encoded JPEG/PNG bytes.

    Serialized deterministically: protobuf writes the feature map in hash order otherwise,
    and two runs (or two workers) would write different bytes for the same example.
    """
    encoded = feats.encode_example({IMAGE: image, LABEL: label, KEY: key, PARENT_KEY: parent_key, SOURCE: source})
    return _serializer(feats).get_tf_example(encoded).SerializeToString(deterministic=True)


def _serializer(feats: tfds.features.FeaturesDict) -> example_serializer.ExampleSerializer:
    cached = getattr(feats, "_flowerpipe_serializer", None)
    if cached is None:
        cached = example_serializer.ExampleSerializer(feats.get_serialized_info())
        feats._flowerpipe_serializer = cached
    return cached


def parse_spec() -> dict[str, tf.io.FixedLenFeature]:
    """The tf.io spec of the raw (undecoded) features, for fast tf.data input pipelines."""
    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        KEY: tf.io.FixedLenFeature([], tf.string),
        PARENT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses serialized examples (scalar or batch) into raw tensors (image still encoded)."""
    if serialized.shape.rank == 0:
        return tf.io.parse_single_example(serialized, parse_spec())
    return tf.io.parse_example(serialized, parse_spec())


def shard_name(dataset: str, split: str, index: int, num_shards: int) -> str:
    return f"{dataset}-{split}.tfrecord-{index:05d}-of-{num_shards:05d}"
