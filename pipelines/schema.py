"""The TFRecord example layouts: the one definition both the Beam job and the trainer use.

Two layouts, chosen with `--layout` and recorded as `layout` in every dataset's stats.json
(`layout_of(dir)` reads it back):

`tfds` (default): a flat TFDS `FeaturesDict`; a folder of these shards plus the metadata written
by `tfds.folder_dataset.write_metadata` loads with `tfds.builder_from_directory`:

    image       tfds.features.Image   encoded JPEG or PNG bytes, 3 channels (or 1 for grayscale sets)
    label       tfds.features.ClassLabel(names=...)  int64 index into the class names
    key         tfds.features.Text    unique, deterministic id ('<class>/<sha256>', '<file path>', ...)
    parent_key  tfds.features.Text    for offline augmented copies: the original's key; '' otherwise
    source      tfds.features.Text    provenance: the crawled URL, the file path, or 'tfds:<name>/...'

`model_garden`: the tf.train.Example keys TF Model Garden's classification decoder reads
(official/vision/dataloaders/classification_input.py: 'image/encoded', 'image/class/label'),
plus the usual companions. Declared as a nested TFDS FeaturesDict, whose serialized keys are
exactly these, so uncompressed shards still load with `tfds.builder_from_directory`:

    image/encoded      bytes   encoded JPEG (or PNG)
    image/format       bytes   'jpeg' or 'png'
    image/height       int64   pixels
    image/width        int64   pixels
    image/class/label  int64   0-based index into the class names (no background class)
    image/class/text   bytes   the class name
    image/source_id    bytes   the example key (as `key` above)
    image/parent_id    bytes   the original's key for augmented copies, '' otherwise
    image/source       bytes   provenance (as `source` above)

Bump `LAYOUT_VERSION` when a layout changes; it is written into every dataset's metadata.

Importing this module imports neither TensorFlow nor TensorFlow Datasets (the programs' --help
and flag checks use it). TFDS features and its example serializer, imported when an example is
built, do not need TensorFlow: Beam workers serialize examples without paying TensorFlow's
start-up. Only the parse side (`parse_spec`, `parse`) imports it, when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from storage import fs

if TYPE_CHECKING:
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import example_serializer

LAYOUT_VERSION = 1
IMAGE, LABEL, KEY, PARENT_KEY, SOURCE = "image", "label", "key", "parent_key", "source"
SUPERVISED_KEYS = (IMAGE, LABEL)
SHARD_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
STATS_FILE = "stats.json"

# Model Garden's feature keys (classification_input.DEFAULT_IMAGE_FIELD_KEY / DEFAULT_LABEL_FIELD_KEY).
MG_IMAGE, MG_LABEL = "image/encoded", "image/class/label"


@dataclasses.dataclass(frozen=True)
class Layout:
    """One example layout: its TFDS features, how an example fills them, and its raw parse spec.

    `image_key` and `label_key` name the encoded image and the int64 label in the serialized
    tf.train.Example (the keys of `parse_spec`).
    """

    name: str
    image_key: str
    label_key: str
    key_key: str
    features: Callable[[Sequence[str], int, str, int | None], tfds.features.FeaturesDict]
    # (image, label, key, parent_key="", source="", class_name="", height=0, width=0, fmt="jpeg") -> dict
    example: Callable[..., dict]
    parse_spec: Callable[[], dict]
    supervised_keys: tuple | None


def _image_feature(channels, encoding, image_size):
    import tensorflow_datasets as tfds

    side = image_size or None
    return tfds.features.Image(shape=(side, side, channels), encoding_format=encoding)


def _tfds_features(class_names, channels, encoding, image_size):
    import tensorflow_datasets as tfds

    return tfds.features.FeaturesDict(
        {
            IMAGE: _image_feature(channels, encoding, image_size),
            LABEL: tfds.features.ClassLabel(names=list(class_names)),
            KEY: tfds.features.Text(),
            PARENT_KEY: tfds.features.Text(),
            SOURCE: tfds.features.Text(),
        }
    )


def _tfds_example(image, label, key, parent_key="", source="", **_unused):
    return {IMAGE: image, LABEL: label, KEY: key, PARENT_KEY: parent_key, SOURCE: source}


def _tfds_spec():
    import tensorflow as tf

    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        KEY: tf.io.FixedLenFeature([], tf.string),
        PARENT_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }


def _mg_features(class_names, channels, encoding, image_size):
    import tensorflow_datasets as tfds

    text, int64 = tfds.features.Text, lambda: tfds.features.Scalar(np.int64)
    return tfds.features.FeaturesDict(
        {
            "image": {
                "encoded": _image_feature(channels, encoding, image_size),
                "format": text(),
                "height": int64(),
                "width": int64(),
                "class": {"label": tfds.features.ClassLabel(names=list(class_names)), "text": text()},
                "source_id": text(),
                "parent_id": text(),
                "source": text(),
            }
        }
    )


def _mg_example(image, label, key, parent_key="", source="", class_name="", height=0, width=0, fmt="jpeg"):
    return {
        "image": {
            "encoded": image,
            "format": fmt,
            "height": height,
            "width": width,
            "class": {"label": label, "text": class_name},
            "source_id": key,
            "parent_id": parent_key,
            "source": source,
        }
    }


def _mg_spec():
    import tensorflow as tf

    s, i = tf.string, tf.int64
    return {
        MG_IMAGE: tf.io.FixedLenFeature([], s),
        MG_LABEL: tf.io.FixedLenFeature([], i),
        "image/format": tf.io.FixedLenFeature([], s, default_value=""),
        "image/height": tf.io.FixedLenFeature([], i, default_value=0),
        "image/width": tf.io.FixedLenFeature([], i, default_value=0),
        "image/class/text": tf.io.FixedLenFeature([], s, default_value=""),
        "image/source_id": tf.io.FixedLenFeature([], s),
        "image/parent_id": tf.io.FixedLenFeature([], s, default_value=""),
        "image/source": tf.io.FixedLenFeature([], s, default_value=""),
    }


LAYOUTS: dict[str, Layout] = {
    "tfds": Layout("tfds", IMAGE, LABEL, KEY, _tfds_features, _tfds_example, _tfds_spec, SUPERVISED_KEYS),
    # Nested features: TFDS supervised keys are top-level names, so there are none here.
    "model_garden": Layout(
        "model_garden", MG_IMAGE, MG_LABEL, "image/source_id", _mg_features, _mg_example, _mg_spec, None
    ),
}


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def layout_of(data_dir: str) -> str:
    """The layout of a folder written by the Beam job (from its stats.json; 'tfds' before layouts existed)."""
    path = fs.join(data_dir, STATS_FILE)
    if not fs.exists(path):
        return "tfds"
    return fs.read_json(path).get("layout", "tfds")


def features(
    class_names: Sequence[str],
    channels: int = 3,
    encoding: str = "jpeg",
    layout: str = "tfds",
    image_size: int | None = None,
) -> tfds.features.FeaturesDict:
    """The FeaturesDict of a dataset with these classes.

    `image_size`: every image is image_size x image_size (the image feature gets that static
    shape, so readers can skip resizing); None when sizes vary (`--resize=keep`).
    """
    feats = get_layout(layout).features(class_names, channels, encoding, image_size)
    feats._flowerpipe_layout = layout
    return feats


def serialize(feats: tfds.features.FeaturesDict, *, image: bytes, label: int, key: str, **fields) -> bytes:
    """One serialized tf.train.Example in the layout `feats` was made for; `image` is encoded bytes.

    `fields` are the layout's optional ones (parent_key, source, class_name, height, width, fmt;
    see `Layout.example`). Serialized deterministically: protobuf writes the feature map in hash
    order otherwise, and two runs (or two workers) would write different bytes for the same example.
    """
    layout = get_layout(getattr(feats, "_flowerpipe_layout", "tfds"))
    encoded = feats.encode_example(layout.example(image=image, label=label, key=key, **fields))
    return _serializer(feats).get_tf_example(encoded).SerializeToString(deterministic=True)


def _serializer(feats: tfds.features.FeaturesDict) -> example_serializer.ExampleSerializer:
    cached = getattr(feats, "_flowerpipe_serializer", None)
    if cached is None:
        from tensorflow_datasets.core import example_serializer

        cached = example_serializer.ExampleSerializer(feats.get_serialized_info())
        feats._flowerpipe_serializer = cached
    return cached


def parse_spec(layout: str = "tfds") -> dict:
    """The tf.io spec of the raw (undecoded) features, for fast tf.data input pipelines."""
    return get_layout(layout).parse_spec()


def parse(serialized, layout: str = "tfds") -> dict:
    """Parses serialized examples (a scalar or batch tf.Tensor) into raw tensors (image still encoded)."""
    import tensorflow as tf

    if serialized.shape.rank == 0:
        return tf.io.parse_single_example(serialized, parse_spec(layout))
    return tf.io.parse_example(serialized, parse_spec(layout))


def shard_name(dataset: str, split: str, index: int, num_shards: int) -> str:
    return f"{dataset}-{split}.tfrecord-{index:05d}-of-{num_shards:05d}"


def class_name_problem(name: str) -> str:
    """Why `name` cannot be a class name ('' if it can).

    TFDS keeps a ClassLabel's names in a text file, one a line, and reads them back with each
    line stripped and empty lines dropped (tfds.features.ClassLabel): a name with a line break,
    with leading or trailing white space, or with nothing but white space comes back as other
    names, and every label after it points at the wrong class.
    """
    if not name.strip():
        return "it is empty or only white space"
    if any(c in name for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        return "it holds a line break"
    if name != name.strip():
        return "it starts or ends with white space"
    if not name.isprintable():
        return "it holds a control character"
    return ""


def check_class_names(names: Sequence[str], what: str = "class") -> None:
    """ValueError naming the first class name that would not survive TFDS's label file."""
    for name in names:
        problem = class_name_problem(name)
        if problem:
            raise ValueError(
                f"{what} {name!r} cannot be a class name ({problem}): TFDS's label file would read it "
                "back as other names and shift every label after it; rename it"
            )
