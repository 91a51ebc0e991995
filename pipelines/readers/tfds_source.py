"""A TensorFlow Datasets image classification dataset already on disk (--tfds_name, --tfds_data_dir).

This reader never downloads: a dataset that is not prepared in the data dir is an error.

Two passes over the data, both without decoding an image (`SkipDecoding`):
- on the driver, `read_tfds` lists every example's key, label and split (it reads the
  records but keeps only the label), so splits, class checks and stats work as for folders;
- on the workers, `TfdsSource.read` reads one contiguous range of a split (`train[0:1000]`,
  a TFDS sub-split that opens only the files it covers) and attaches the encoded bytes to
  the driver's records. The pipeline carries ranges, not images, until the workers read them.

Keys are `<name>/<split>/<index>` (index in the split's on-disk order): deterministic and unique.
TensorFlow Datasets is imported when the reader reads, not with this module (see the package's docstring).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pipelines import console
from pipelines.readers.base import Input, Reader, ReaderOptions, Record, register
from storage import fs

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

READ_CHUNK = 1000  # examples per worker read task


@dataclasses.dataclass(frozen=True)
class TfdsInfo:
    name: str  # the builder's name (file name prefix of its keys)
    class_names: list[str]
    channels: int  # the image feature's channel count (3 if it does not say)
    image_key: str
    label_key: str
    splits: dict[str, int]


def _builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=data_dir or None)  # reads only the metadata: cheap next to a read task


def open_tfds(name: str, data_dir: str = "") -> tuple[tfds.core.DatasetBuilder, TfdsInfo]:
    """The prepared builder and what the job needs of it; ValueError (one line) if it can't be used."""
    import tensorflow_datasets as tfds

    try:
        builder = _builder(name, data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0], known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see tfds.list_builders())"
        raise ValueError(f"--tfds_name={name}: no such TFDS dataset{hint}") from None
    except Exception as e:  # bad version/config strings and friends
        raise ValueError(f"--tfds_name={name}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    if not builder.is_prepared():
        raise ValueError(
            f"--tfds_name={name} is not prepared in {builder.data_dir}: this job never downloads; "
            f"prepare it first (tfds build {name} --data_dir=DIR) and pass --tfds_data_dir=DIR"
        )
    info = builder.info
    image_key, label_key = (info.supervised_keys or ("image", "label"))[:2]
    feats = info.features
    if not (
        isinstance(image_key, str)
        and isinstance(label_key, str)
        and image_key in feats
        and label_key in feats
        and isinstance(feats[image_key], tfds.features.Image)
        and isinstance(feats[label_key], tfds.features.ClassLabel)
    ):
        raise ValueError(
            f"--tfds_name={name}: not an image classification dataset (needs an Image and a "
            f"ClassLabel as supervised keys; has {info.supervised_keys})"
        )
    channels = feats[image_key].shape[-1] or 3
    return builder, TfdsInfo(
        builder.name,
        list(feats[label_key].names),
        channels,
        image_key,
        label_key,
        {s: v.num_examples for s, v in info.splits.items()},
    )


def _examples(builder, info: TfdsInfo, split: str):
    import tensorflow_datasets as tfds

    ds = builder.as_dataset(split=split, shuffle_files=False, decoders={info.image_key: tfds.decode.SkipDecoding()})
    return tfds.as_numpy(ds)


def read_tfds(name: str, data_dir: str = "") -> tuple[list[Record], TfdsInfo, TfdsSource]:
    """Records (without bytes) of every split, the dataset's info, and the worker-side reader."""
    builder, info = open_tfds(name, data_dir)
    records = []
    for split in sorted(info.splits):
        rows = _examples(builder, info, split)
        for index, ex in enumerate(console.track(rows, f"listing {name} {split}", info.splits[split], "examples")):
            key = f"{info.name}/{split}/{index}"
            records.append(
                Record(
                    key=key,
                    path=f"tfds:{key}",
                    label=info.class_names[int(ex[info.label_key])],
                    source=f"tfds:{key}",
                    split=split,
                )
            )
    return records, info, TfdsSource(name, data_dir, info)


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """The worker-side read step: `tasks` cuts the records into ranges, `read` loads one range."""

    name: str
    data_dir: str
    info: TfdsInfo
    chunk: int = READ_CHUNK

    def tasks(self, records: list[Record]) -> list[tuple[str, int, list[Record]]]:
        """(input split, first index, the records of that range in index order) per read task."""
        by_split: dict[str, dict[int, Record]] = {}
        for r in records:
            _, split, index = r.key.rsplit("/", 2)
            by_split.setdefault(split, {})[int(index)] = r
        out = []
        for split, members in sorted(by_split.items()):
            n = max(members) + 1
            for start in range(0, n, self.chunk):
                chunk = [members.get(i) for i in range(start, min(n, start + self.chunk))]
                out.append((split, start, chunk))
        return out

    def read(self, task: tuple[str, int, list]) -> Iterator[Record]:
        """The task's records with their encoded image attached (`data`)."""
        split, start, chunk = task
        builder = _builder(self.name, self.data_dir)
        rows = _examples(builder, self.info, f"{split}[{start}:{start + len(chunk)}]")
        seen = 0
        for record, ex in zip(chunk, rows):
            seen += 1
            if record is None:
                continue
            label = self.info.class_names[int(ex[self.info.label_key])]
            if label != record.label:  # the data changed since the driver listed it
                raise RuntimeError(f"{record.key}: label {label!r} on the worker, {record.label!r} on the driver")
            yield dataclasses.replace(record, data=bytes(ex[self.info.image_key]))
        if seen < len(chunk):
            raise RuntimeError(f"tfds {self.name} {split}[{start}:{start + len(chunk)}]: only {seen} examples read")


@register
class TfdsReader(Reader):
    """A TFDS dataset prepared on disk (--tfds_name, --tfds_data_dir): keeps its splits, labels and channels."""

    name = "tfds"
    input_flag = "tfds_name"
    option_flags = ("tfds_data_dir",)

    def check(self, options: ReaderOptions) -> None:
        if options.tfds_data_dir:
            fs.check(options.tfds_data_dir, "--tfds_data_dir", tensorflow=True)  # TFDS reads through TensorFlow
            fs.preflight(options.tfds_data_dir, "--tfds_data_dir")

    def read(self, options: ReaderOptions) -> Input:
        records, info, loader = read_tfds(options.tfds_name, options.tfds_data_dir)
        where = options.tfds_data_dir or "default data dir"
        return Input(
            records,
            info.class_names,
            f"tfds {options.tfds_name} ({where})",
            loader=loader,
            channels=info.channels,
            own_splits=True,
        )
