"""tf.data input pipelines for training and evaluation.

Datasets come through TFDS builders: a folder written by our Beam job in the example layout
of `pipelines.schema` (`tfds.builder_from_directory`), or any TFDS image classification
dataset already on disk.
Images are read still encoded (`SkipDecoding`) so decoding, resizing and augmentation run
in our own parallel map. Files are interleaved in parallel and, under a distribution
strategy, sharded by file per input pipeline (TFDS `ReadConfig(input_context=...)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import schema
from storage import fs
from trainer.normalization import NORMALIZATIONS

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    builder: tfds.core.DatasetBuilder
    class_names: list[str]
    channels: int
    image_key: str
    label_key: str
    split_sizes: dict[str, int]
    image_shape: tuple = (None, None, 3)  # static (H, W, C) from the metadata; None where sizes vary
    encoding: str | None = None  # "jpeg", "png" or None (mixed/unknown): picks the decoder


def open_dataset(data_dir: str = "", tfds_name: str = "", tfds_data_dir: str = "") -> DatasetInfo:
    """Opens a Beam-built folder or an on-disk TFDS dataset; raises ValueError with a fix if it can't."""
    if bool(data_dir) == bool(tfds_name):
        raise ValueError("give exactly one of --data_dir (a folder built by pipelines.build_tfrecords) or --tfds_name")
    if data_dir:
        layout = schema.layout_of(data_dir)
        if layout != "tfds":
            raise ValueError(
                f"--data_dir={data_dir} has the {layout!r} example layout; the trainer reads the 'tfds' "
                "layout: rebuild it with pipelines.build_tfrecords without --layout"
            )
        if not fs.exists(fs.join(data_dir, "dataset_info.json")):
            raise ValueError(
                f"--data_dir={data_dir} has no dataset_info.json: point it at the <dataset>/<version> "
                "folder written by `python -m pipelines.build_tfrecords`"
            )
        builder = tfds.builder_from_directory(data_dir)
    else:
        try:
            builder = tfds.builder(tfds_name, data_dir=tfds_data_dir or None)
        except Exception as e:  # TFDS raises DatasetNotFoundError and friends
            raise ValueError(f"--tfds_name={tfds_name}: {e}") from e
        if not builder.is_prepared():
            raise ValueError(
                f"--tfds_name={tfds_name} is not prepared in {builder.data_dir}; this trainer never "
                "downloads: prepare it first (tfds build) or pass --tfds_data_dir"
            )
    info = builder.info
    sup = info.supervised_keys or schema.SUPERVISED_KEYS
    image_key, label_key = sup[0], sup[1]
    image_feature, label_feature = info.features[image_key], info.features[label_key]
    if not isinstance(image_feature, tfds.features.Image) or not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(f"{builder.name}: needs an Image feature and a ClassLabel (supervised keys {sup})")
    return DatasetInfo(
        builder,
        list(label_feature.names),
        image_feature.shape[-1] or 3,
        image_key,
        label_key,
        {name: split.num_examples for name, split in info.splits.items()},
        tuple(image_feature.shape),
        image_feature.encoding_format,
    )


def dataset_identity(info: DatasetInfo) -> dict:
    """What a run records of its dataset when it starts, and a resumed run compares: name, version,
    class names in label order, split sizes, and a sha256 of the metadata that defines the
    examples (features, supervised keys, class names, each split's shard lengths and bytes).

    Paths and the free-text description are left out: a byte-identical rebuild elsewhere, or a
    copy in a bucket, has the same fingerprint; a rebuild with another class order, other images
    or other splits has another.
    """
    meta = info.builder.info
    defining = {
        "name": meta.name,
        "version": str(meta.version),
        "class_names": list(info.class_names),
        "features": meta.features.to_json(),
        "supervised_keys": meta.supervised_keys,
        "splits": {
            name: {"shard_lengths": list(split.shard_lengths), "num_bytes": int(split.num_bytes)}
            for name, split in sorted(meta.splits.items())
        },
    }
    digest = hashlib.sha256(json.dumps(defining, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "name": meta.name,
        "version": str(meta.version),
        "class_names": list(info.class_names),
        "split_sizes": dict(sorted(info.split_sizes.items())),
        "fingerprint": digest,
    }


def dataset_change(recorded: dict, current: dict) -> str | None:
    """How the dataset `current` differs from the one a run `recorded` (first difference, one
    phrase), or None. A record holding only class names (runs older than dataset.json) is
    compared on those."""
    old, new = recorded.get("class_names"), current["class_names"]
    if old is not None and old != new:
        if len(old) != len(new):
            return f"the run has {len(old)} classes, the data has {len(new)}"
        diffs = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
        i = diffs[0]
        return (
            f"class {i} is {old[i]!r} in the run and {new[i]!r} in the data ({len(diffs)} of {len(old)} "
            "label positions differ)"
        )
    for key in ("name", "version"):
        if key in recorded and recorded[key] != current[key]:
            return f"the run's dataset {key} is {recorded[key]!r}, the data's is {current[key]!r}"
    if recorded.get("split_sizes", current["split_sizes"]) != current["split_sizes"]:
        return f"the run's split sizes were {recorded['split_sizes']}, the data's are {current['split_sizes']}"
    if recorded.get("fingerprint", current["fingerprint"]) != current["fingerprint"]:
        return (
            f"the dataset's metadata changed since the run started (fingerprint {recorded['fingerprint'][:12]} "
            f"-> {current['fingerprint'][:12]}: its features or shards differ)"
        )
    return None


class Normalization(NamedTuple):
    """Per-channel mean and std (0-255 scale) and where they came from (one phrase, for the log)."""

    mean: list[float]
    std: list[float]
    source: str


def channel_stats(info: DatasetInfo, split: str) -> dict | None:
    """The Beam job's per-channel statistics of `split` (`channel_stats`: TFDS metadata, else
    stats.json next to the shards), or None when the dataset has none that fit (another split,
    another channel count, a dataset from elsewhere)."""
    stats = None
    try:
        stats = (info.builder.info.metadata or {}).get("channel_stats")
    except AttributeError:  # a builder without metadata
        stats = None
    if stats is None:
        path = fs.join(os.fspath(info.builder.data_dir), "stats.json")
        if fs.exists(path):
            stats = fs.read_json(path).get("channel_stats")
    if (
        not isinstance(stats, dict)
        or stats.get("split") != split
        or not stats.get("images")
        or len(stats.get("mean") or ()) != info.channels
        or len(stats.get("std") or ()) != info.channels
    ):
        return None
    return stats


def normalization_constants(
    name: str, info: DatasetInfo, split: str, image_size: int, sample: int = 1000
) -> Normalization:
    """Per-channel mean and std (0-255 scale): named constants; with `dataset`, the dataset's
    `channel_stats` (the Beam job computed them over every `split` image it wrote, on the same
    0-255 pixels) or, for a dataset without them, computed here from `sample` images of `split`."""
    c = info.channels
    if name in NORMALIZATIONS:
        mean, std = NORMALIZATIONS[name]
        return Normalization(mean[:c], std[:c], f"the {name} constants")
    if name != "dataset":
        raise ValueError(f"unknown normalization {name!r}; known: dataset, {', '.join(NORMALIZATIONS)}")
    stats = channel_stats(info, split)
    if stats is not None:
        return Normalization(
            [float(v) for v in stats["mean"]],
            [max(float(v), 1e-3) for v in stats["std"]],
            f"the dataset's channel_stats: {stats['images']} {split} images",
        )
    ds = raw_split(info, split, shuffle_seed=None).take(sample)
    decode = dataset_decoder(info, image_size)
    ds = ds.map(lambda img, _label: tf.cast(decode(img), tf.float64), num_parallel_calls=AUTOTUNE)
    total, total_sq, n, images = np.zeros(c), np.zeros(c), 0, 0
    try:
        for batch in ds.batch(128).as_numpy_iterator():
            flat = batch.reshape(-1, c)
            total += flat.sum(0)
            total_sq += (flat**2).sum(0)
            n += flat.shape[0]
            images += batch.shape[0]
    except READ_ERRORS as e:  # the run's first read of the data: name the record, as training does
        raise corrupt_data_error(info, split, image_size, e) from e
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 1e-6))
    return Normalization(
        [float(v) for v in mean],
        [float(v) for v in std],
        f"computed from {images} {split} images: the dataset has no channel_stats",
    )


def raw_split(
    info: DatasetInfo,
    split: str,
    shuffle_seed: int | None,
    input_context: tf.distribute.InputContext | None = None,
    deterministic: bool = True,
) -> tf.data.Dataset:
    """(encoded image bytes, label) pairs of a split, files interleaved (and shuffled if a seed is given)."""
    if split not in info.split_sizes:
        raise ValueError(f"split {split!r} not in the dataset (has {sorted(info.split_sizes)})")
    read_config = tfds.ReadConfig(
        shuffle_seed=shuffle_seed,
        input_context=input_context,
        interleave_cycle_length=AUTOTUNE,
        interleave_block_length=1,
        num_parallel_calls_for_interleave_files=AUTOTUNE,
        enable_ordering_guard=False,
    )
    ds = info.builder.as_dataset(
        split=split,
        shuffle_files=shuffle_seed is not None,
        read_config=read_config,
        decoders={info.image_key: tfds.decode.SkipDecoding()},
    )
    options = tf.data.Options()
    options.deterministic = deterministic
    ds = ds.with_options(options)
    return ds.map(lambda ex: (ex[info.image_key], ex[info.label_key]), num_parallel_calls=AUTOTUNE)


def resize_uint8(img: tf.Tensor, image_size: int) -> tf.Tensor:
    """uint8 HxWxC -> image_size x image_size, aspect kept and padded (a no-op at that size)."""
    shape = tf.shape(img)
    same = tf.logical_and(tf.equal(shape[0], image_size), tf.equal(shape[1], image_size))
    return tf.cond(
        same, lambda: img, lambda: tf.cast(tf.round(tf.image.resize_with_pad(img, image_size, image_size)), tf.uint8)
    )


def decode_resize(encoded: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """Any encoded JPEG/PNG/GIF/BMP -> uint8 image_size x image_size x channels (aspect kept, padded)."""
    img = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    return tf.ensure_shape(resize_uint8(img, image_size), [image_size, image_size, channels])


def dataset_decoder(info: DatasetInfo, image_size: int):
    """`decode_resize` specialised by what the dataset's metadata promises.

    `decode_jpeg` for a JPEG dataset (faster than the format-sniffing `decode_image`), and no
    resize at all when every image already has the target size (the Beam job records it):
    each shortcut is worth ~8% of input throughput on 224 px JPEGs.
    """
    c = info.channels
    h, w = info.image_shape[0], info.image_shape[1]

    def decode(encoded):
        if info.encoding == "jpeg":
            img = tf.io.decode_jpeg(encoded, channels=c)
        else:
            img = tf.io.decode_image(encoded, channels=c, expand_animations=False)
        if h is None or w is None:
            img = resize_uint8(img, image_size)
        elif (h, w) != (image_size, image_size):
            img = tf.cast(tf.round(tf.image.resize_with_pad(img, image_size, image_size)), tf.uint8)
        return tf.ensure_shape(img, [image_size, image_size, c])

    return decode


def augment(img: tf.Tensor, flip: bool, crop_pad: int, seed: tf.Tensor) -> tf.Tensor:
    """Random flip and random crop after zero padding, stateless in `seed` (shape [2])."""
    if flip:
        img = tf.image.stateless_random_flip_left_right(img, seed)
    if crop_pad > 0:
        size = tf.shape(img)
        padded = tf.pad(img, [[crop_pad, crop_pad], [crop_pad, crop_pad], [0, 0]])
        img = tf.image.stateless_random_crop(padded, size, seed + 1)
    return img


def normalize(images: tf.Tensor, mean, std) -> tf.Tensor:
    """(images - mean) / std per channel, for one image [H, W, C] or a batch [N, H, W, C].

    Written as a row-broadcast multiply-add over flattened images with precomputed
    [H*W*C] constants: TensorFlow's CPU kernels broadcast over a trailing axis of 3 about
    2.5x slower, which made normalisation the input pipeline's bottleneck.
    """
    h, w, c = images.shape[-3:]
    scale = 1.0 / np.asarray(std, np.float32)
    offset = -np.asarray(mean, np.float32) * scale
    if None in (h, w, c):
        return tf.cast(images, tf.float32) * scale + offset
    shape = tf.shape(images)
    flat = tf.reshape(tf.cast(images, tf.float32), [-1, h * w * c])
    flat = flat * tf.constant(np.tile(scale, h * w)) + tf.constant(np.tile(offset, h * w))
    return tf.reshape(flat, shape)


def _beta(alpha: float, seed: tf.Tensor) -> tf.Tensor:
    a = tf.random.stateless_gamma([], seed, alpha)
    b = tf.random.stateless_gamma([], seed + 7, alpha)
    return a / (a + b)


def mix_batch(
    images: tf.Tensor, labels: tf.Tensor, num_classes: int, mixup_alpha: float, cutmix_alpha: float, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup or CutMix of a batch with itself reversed; labels become mixed one-hot rows.

    With both alphas set, each batch picks one of the two at random. Stateless in `seed`.
    """
    onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
    partner_x, partner_y = tf.reverse(images, [0]), tf.reverse(onehot, [0])

    def mixup():
        lam = _beta(mixup_alpha, seed)
        return lam * images + (1 - lam) * partner_x, lam * onehot + (1 - lam) * partner_y

    def cutmix():
        lam = _beta(cutmix_alpha, seed + 1)
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        cut = tf.sqrt(1.0 - lam)
        ch, cw = tf.cast(cut * tf.cast(h, tf.float32), tf.int32), tf.cast(cut * tf.cast(w, tf.float32), tf.int32)
        cy = tf.random.stateless_uniform([], seed + 2, 0, h, dtype=tf.int32)
        cx = tf.random.stateless_uniform([], seed + 3, 0, w, dtype=tf.int32)
        y0, y1 = tf.maximum(cy - ch // 2, 0), tf.minimum(cy + ch // 2, h)
        x0, x1 = tf.maximum(cx - cw // 2, 0), tf.minimum(cx + cw // 2, w)
        rows, cols = tf.range(h)[:, None], tf.range(w)[None, :]
        box = tf.cast((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1), images.dtype)[None, :, :, None]
        area = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(h * w, tf.float32)
        return images * (1 - box) + partner_x * box, (1 - area) * onehot + area * partner_y

    if mixup_alpha > 0 and cutmix_alpha > 0:
        return tf.cond(tf.random.stateless_uniform([], seed + 4) < 0.5, mixup, cutmix)
    return mixup() if mixup_alpha > 0 else cutmix()


def make_train_dataset(
    info: DatasetInfo,
    split: str,
    *,
    batch_size: int,
    image_size: int,
    seed: int = 0,
    start_batch: int = 0,
    flip: bool = False,
    crop_pad: int = 0,
    shuffle_buffer: int = 2048,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    deterministic: bool = True,
    cache: bool = False,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """The endless, batched training stream of one input pipeline: (pixel images, labels).

    Images stay pixels (uint8, 0-255; float32 in the same range with mixup/cutmix): the model
    step normalises them on its device (`normalize`), which moves a quarter of the bytes
    through the input threads and keeps per-channel arithmetic off the CPU on GPUs.
    Examples are reshuffled every pass with a fixed seed, so the whole stream is a function of
    `seed`; `start_batch` skips what a resumed run already trained on (before any decoding
    unless `cache`).
    Augmentation is seeded by the example's position in the stream; with mixup/cutmix the
    labels are mixed one-hot rows instead of class indices. `cache` keeps the decoded, resized
    images in memory after the first pass (H*W*C bytes each), so later epochs decode nothing.
    """
    decode = dataset_decoder(info, image_size)
    ds = raw_split(info, split, shuffle_seed=None, input_context=input_context, deterministic=deterministic)
    if cache:
        ds = ds.map(
            lambda img, label: (decode(img), label), num_parallel_calls=AUTOTUNE, deterministic=deterministic
        ).cache()
        decode = tf.identity
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    if start_batch:
        ds = ds.skip(start_batch * batch_size)
    ds = ds.map(
        lambda i, xy: (augment(decode(xy[0]), flip, crop_pad, tf.stack([tf.cast(seed, tf.int64), i])), xy[1]),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    ds = ds.batch(batch_size, drop_remainder=True, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if mixup_alpha > 0 or cutmix_alpha > 0:  # mixing commutes with the per-channel affine normalisation
        n = len(info.class_names)
        ds = ds.enumerate(start=start_batch).map(
            lambda b, xy: mix_batch(
                tf.cast(xy[0], tf.float32),
                xy[1],
                n,
                mixup_alpha,
                cutmix_alpha,
                tf.stack([tf.cast(seed, tf.int64) + 1_000_003, b]),
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    return ds.prefetch(AUTOTUNE)


def make_eval_dataset(
    info: DatasetInfo, split: str, *, batch_size: int, image_size: int, cache: bool = False
) -> tf.data.Dataset:
    """One ordered pass over `split`: (uint8 pixel images, labels, valid), every batch full.

    The last batch is padded to `batch_size` with zero images and `valid` False, so a batch
    split across replicas never hands one an empty slice (oneDNN convolutions reject those);
    callers drop the padded rows. With `cache`, iterate the same dataset object again to read
    the decoded images from memory.
    """
    decode = dataset_decoder(info, image_size)
    ds = raw_split(info, split, shuffle_seed=None)
    ds = ds.map(lambda img, label: (decode(img), label), num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache()

    def pad(images, labels):
        n = tf.shape(labels)[0]
        images = tf.pad(images, [[0, batch_size - n], [0, 0], [0, 0], [0, 0]])
        labels = tf.pad(labels, [[0, batch_size - n]])
        valid = tf.range(batch_size) < n
        return (
            tf.ensure_shape(images, [batch_size, image_size, image_size, info.channels]),
            tf.ensure_shape(labels, [batch_size]),
            valid,
        )

    ds = ds.batch(batch_size, num_parallel_calls=AUTOTUNE).map(pad, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def split_files(info: DatasetInfo, split: str) -> list[str]:
    """The shard files of a split, in order."""
    return [os.fspath(f) for f in info.builder.info.splits[split].filepaths]


# What reading a split raises on a bad record: a failed CRC or a truncated file (DataLossError), an
# image that does not decode or has another shape than the metadata says (InvalidArgumentError).
READ_ERRORS = (tf.errors.DataLossError, tf.errors.InvalidArgumentError)


class CorruptDataError(RuntimeError):
    """A record of a split cannot be read or decoded; the message names the file and the record."""


def corrupt_data_error(info: DatasetInfo, split: str, image_size: int, error: Exception) -> CorruptDataError:
    """The error to stop with when reading `split` raised `error`: the bad record found again
    (file, record, key) and the way out."""
    where = locate_corruption(info, split, image_size)
    if where is None:
        where = (
            f"no bad record found on a second read (transient read error?): {type(error).__name__}: "
            f"{_tf_message(error)}"
        )
    return CorruptDataError(
        f"corrupt TFRecord in split {split!r}: {where}. Rebuild the dataset "
        "(python -m pipelines.build_tfrecords --overwrite) or restore the file"
    )


def locate_corruption(info: DatasetInfo, split: str, image_size: int | None = None) -> str | None:
    """Names the first bad record of a split ('path: file F, record N: reason'), or None.

    First every record's framing and CRC, with the Beam job's own shard verifier
    (`pipelines.inspect_dataset`, so both programs report corruption alike); then, given `image_size`,
    every image through the decoder training uses (a record can be intact and hold a JPEG cut
    short by its writer).
    """
    import collections

    from pipelines import inspect_dataset as inspect_lib

    files = split_files(info, split)
    for index, path in enumerate(files):
        report = inspect_lib.verify_shard(path, split, index, "tfds", "", len(info.class_names), collections.Counter())
        if report.problems:
            return f"{path}: {report.problems[0]}"
    if image_size is None:
        return None
    decode = dataset_decoder(info, image_size)
    for path in files:
        problem = _first_undecodable(info, path, decode)
        if problem:
            return f"{path}: {problem}"
    return None


def _first_undecodable(info: DatasetInfo, path: str, decode) -> str | None:
    """'file F, record N (key K): the image does not decode (reason)' for the first record of a
    shard whose image `decode` rejects, or None."""
    for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        feature = tf.train.Example.FromString(record).features.feature
        try:
            decode(tf.constant(feature[info.image_key].bytes_list.value[0]))
        except (tf.errors.InvalidArgumentError, IndexError) as e:  # IndexError: no image bytes at all
            keys = feature["key"].bytes_list.value if "key" in feature else []
            key = f" (key {keys[0].decode(errors='replace')!r})" if keys else ""
            return f"file {fs.basename(path)}, record {index}{key}: the image does not decode ({_tf_message(e)})"
    return None


def _tf_message(error: Exception) -> str:
    """The first line of a TensorFlow error without its op and node decorations."""
    text = str(getattr(error, "message", error)).strip().splitlines()[0] if str(error).strip() else repr(error)
    return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", "", text).strip()
