"""After the Beam job, on the driver: merge what the workers wrote, check it, and write the folder's
metadata (TFDS's files, stats.json, the class histogram) next to the shards.

    merge -> check -> split_infos (a shard that got no example is written empty) -> tfds metadata -> stats

Each step is a function of what the previous ones returned; `finish` runs them in order.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import tempfile

from absl import logging

from pipelines import channel_stats, console, schema, shards
from pipelines.options import JobOptions
from pipelines.readers import Input
from pipelines.transforms import PARTS, channel_stats_path, dedup_stats_path, parts_dirs
from storage import fs, jsonl

DEAD_LETTER = "dead_letter.jsonl"
STATS = schema.STATS_FILE
HISTOGRAM = "class_histogram.png"
DUPLICATE_REASONS = ("duplicate", "near_duplicate")  # dead letters of --dedup=drop


class BuildError(RuntimeError):
    """The job ran but its result must not be published (e.g. too many bad images)."""


@dataclasses.dataclass(frozen=True)
class Merged:
    """What the workers wrote, merged in an order that does not depend on them."""

    dead: list[dict]  # dead letters (the reader's and the workers'), sorted by key
    shard_infos: list[dict]  # one per written shard, sorted by (split, index)
    duplicates: dict  # dedup.Plan.stats, or {"mode": "off"}
    pixels: channel_stats.PixelSums  # of the train split


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    name: str
    shard_lengths: list[int]
    num_bytes: int


def read_part_lines(folder: str, unique_by, what: str = "part files") -> list[dict]:
    """The JSON lines of every part file in `folder`, one per `unique_by(line)` (a retried bundle
    may have written its lines twice), sorted by it: the merged file does not depend on workers.

    A bundle attempt that died mid-write can leave a torn last line; the retry wrote it whole,
    so an unparsable line without its newline is skipped (with a warning); any other raises.
    """
    lines: dict = {}
    paths = fs.glob(folder, "*")
    for path in console.track(paths, f"merging {what}", len(paths), "files"):
        for line in fs.read_text(path).splitlines(keepends=True):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise ValueError(f"{path}: corrupt line {line[:200]!r}") from None
                logging.warning("%s: skipping the torn last line of an abandoned bundle attempt", path)
                continue
            lines[unique_by(d)] = d
    return [lines[k] for k in sorted(lines)]


def merge(tmp_dir: str, opts: JobOptions) -> Merged:
    """Reads the part files, writes dead_letter.jsonl (sorted by key, empty if none), removes `_parts/`."""
    parts = parts_dirs(tmp_dir)
    dead = read_part_lines(parts["dead_letter"], lambda d: d["key"], "dead letters")
    shard_infos = read_part_lines(parts["shards"], lambda s: (s["split"], s["index"]), "shard infos")
    duplicates = fs.read_json(dedup_stats_path(tmp_dir)) if opts.dedup != "off" else {"mode": "off"}
    p = fs.read_json(channel_stats_path(tmp_dir))
    pixels = channel_stats.PixelSums(p["images"], p["pixels"], tuple(p["sums"]), tuple(p["squares"]))
    fs.rmtree(fs.join(tmp_dir, PARTS))
    jsonl.write(fs.join(tmp_dir, DEAD_LETTER), dead)
    return Merged(dead, shard_infos, duplicates, pixels)


def example_counts(shard_infos: list[dict]) -> list[dict]:
    """{split, label, kind (original/augmented), count} for every non-zero count of the shard infos."""
    return [
        {"split": s["split"], "label": label, "kind": kind, "count": n}
        for s in shard_infos
        for label, kinds in s["labels"].items()
        for kind, n in kinds.items()
        if n
    ]


def check(inp: Input, merged: Merged, opts: JobOptions) -> None:
    """BuildError if the result must not be published: too many bad inputs, a class that lost every
    image, nothing written."""
    inputs = len(inp.records) + len(inp.rejected)
    bad = [d for d in merged.dead if d["reason"] not in DUPLICATE_REASONS]  # a dropped copy is not a bad input
    _check_no_class_lost(inp.records, example_counts(merged.shard_infos), merged.dead)
    bad_fraction = len(bad) / max(1, inputs)
    if bad_fraction > opts.max_bad_fraction:
        raise BuildError(
            f"{len(bad)} of {inputs} inputs are bad ({bad_fraction:.1%} > --max_bad_fraction="
            f"{opts.max_bad_fraction}); see the dead letter reasons, e.g. {_example(bad[0])!r}"
        )
    if not merged.shard_infos:
        raise BuildError(f"no valid image in {inp.description}: nothing to write")


def _check_no_class_lost(records, counts: list[dict], dead: list[dict]) -> None:
    """A class that had inputs but kept no example (every image bad) fails the job, naming the class.

    Only when some other class did produce examples; an input with no valid image at all is
    reported by the bad-fraction and empty-output checks.
    """
    produced = collections.Counter()
    for c in counts:
        produced[c["label"]] += c["count"]
    if not produced:
        return
    inputs = collections.Counter(r.label for r in records)
    lost = sorted(label for label in inputs if not produced[label])
    if lost:
        reasons = {d["label"]: _example(d) for d in dead}
        raise BuildError(
            f"class {lost[0]!r} has no valid image: all {inputs[lost[0]]} of its inputs were rejected "
            f"(e.g. {reasons.get(lost[0], '?')!r})" + (f"; so have classes {lost[1:]}" if len(lost) > 1 else "")
        )


def _example(dead_letter: dict) -> str:
    return f"{dead_letter['reason']}: {dead_letter.get('detail', '')}".rstrip(": ")


def split_infos(shard_infos: list[dict], tmp_dir: str, opts: JobOptions) -> list[SplitInfo]:
    """Shard lengths and bytes per split, sorted by name; writes the empty shards TFDS needs to exist."""
    by_split: dict[str, list[dict]] = collections.defaultdict(list)
    for s in shard_infos:
        by_split[s["split"]].append(s)
    out = []
    for split, infos in sorted(by_split.items()):
        n = infos[0]["num_shards"]
        lengths = [0] * n
        size = sum(s["bytes"] for s in infos)
        for s in infos:
            lengths[s["index"]] = s["count"]
        for i in range(n):  # a shard that got no example still has to exist for TFDS
            if not lengths[i]:
                empty = fs.join(tmp_dir, schema.shard_name(opts.dataset_name, split, i, n))
                size += shards.write_shard(empty, [], opts.compression.upper())[1]
        out.append(SplitInfo(split, lengths, size))
    return out


def write_tfds_metadata(
    tmp_dir: str, class_names: list[str], opts: JobOptions, infos: list[SplitInfo], description: str, metadata: dict
) -> None:
    """dataset_info.json, features.json, the label file and metadata.json (`metadata`, read back as
    `builder.info.metadata`), by `tfds.folder_dataset.write_metadata`.

    TFDS writes through TensorFlow's file layer, which has no s3://; so it writes into a local
    folder (holding empty stand-ins named like the shards, from which it reads the file name
    template) and the files are copied to `tmp_dir` through the storage layer, wherever it is.
    """
    import tensorflow_datasets as tfds

    tfds_infos = [tfds.core.SplitInfo(name=i.name, shard_lengths=i.shard_lengths, num_bytes=i.num_bytes) for i in infos]
    layout = schema.get_layout(opts.layout)
    feats = schema.features(class_names, opts.channels, opts.encoding, opts.layout, opts.fixed_size)
    with tempfile.TemporaryDirectory(prefix="tfds-metadata-") as local:
        for si in infos:
            for i in range(len(si.shard_lengths)):
                name = schema.shard_name(opts.dataset_name, si.name, i, len(si.shard_lengths))
                open(os.path.join(local, name), "wb").close()
        before = set(os.listdir(local))
        tfds.folder_dataset.write_metadata(
            data_dir=local,
            features=feats,
            split_infos=tfds_infos,
            version=opts.version,
            filename_template=schema.SHARD_TEMPLATE,
            supervised_keys=layout.supervised_keys,
            check_data=False,
            description=f"Built by flowerpipe's Beam job from {description} (example layout {opts.layout} "
            f"v{schema.LAYOUT_VERSION}).",
            metadata=tfds.core.MetadataDict(metadata) if metadata else None,
        )
        for name in sorted(set(os.listdir(local)) - before):
            fs.copy(os.path.join(local, name), fs.join(tmp_dir, name))


def stats(inp: Input, merged: Merged, infos: list[SplitInfo], opts: JobOptions, seconds: float) -> dict:
    """stats.json's content (WORKSPACE.md lists its keys)."""
    per_split_class: dict = collections.defaultdict(lambda: collections.defaultdict(int))
    augmented: dict = collections.defaultdict(int)
    for c in example_counts(merged.shard_infos):
        per_split_class[c["split"]][c["label"]] += c["count"]
        if c["kind"] == "augmented":
            augmented[c["split"]] += c["count"]
    out = {
        "dataset": opts.dataset_name,
        "version": opts.version,
        "input": inp.description,
        "layout": opts.layout,
        "layout_version": schema.LAYOUT_VERSION,
        "compression": opts.compression,
        "class_names": inp.class_names,
        "channels": opts.channels,
        "inputs": len(inp.records) + len(inp.rejected),
        "rejected": len(merged.dead),
        "duplicates": merged.duplicates,
        "rejected_per_reason": dict(sorted(collections.Counter(d["reason"] for d in merged.dead).items())),
        "examples_per_split": {s: sum(v.values()) for s, v in sorted(per_split_class.items())},
        "examples_per_split_and_class": {s: dict(sorted(v.items())) for s, v in sorted(per_split_class.items())},
        "augmented_per_split": dict(augmented),
        "bytes_per_split": {si.name: si.num_bytes for si in infos},
        "shards_per_split": {si.name: len(si.shard_lengths) for si in infos},
        "shard_lengths_per_split": {si.name: list(si.shard_lengths) for si in infos},
        "wall_time_seconds": round(seconds, 2),
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k != "augment"},
        "augment": dataclasses.asdict(opts.augment),
    }
    summary = channel_stats.summary(merged.pixels)
    if summary is not None:
        out["channel_stats"] = summary
    return out


def finish(inp: Input, opts: JobOptions, tmp_dir: str, seconds: float) -> dict:
    """Turns the job's output in `tmp_dir` into a complete dataset folder; returns its stats."""
    merged = merge(tmp_dir, opts)
    check(inp, merged, opts)
    infos = split_infos(merged.shard_infos, tmp_dir, opts)
    out = stats(inp, merged, infos, opts, seconds)
    if not opts.compression:  # TFDS reads uncompressed TFRecords only: no metadata that would promise it can
        extra = {"channel_stats": out["channel_stats"]} if "channel_stats" in out else {}
        write_tfds_metadata(tmp_dir, inp.class_names, opts, infos, inp.description, extra)
    fs.write_json(fs.join(tmp_dir, STATS), out)
    histogram(out, fs.join(tmp_dir, HISTOGRAM))
    return out


def histogram(stats: dict, path: str) -> None:
    """Examples per class and split, as a stacked bar chart (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = stats["class_names"]
    fig, ax = plt.subplots(figsize=(max(6, len(names) * 0.45), 4))
    bottom = [0] * len(names)
    for split, per_class in stats["examples_per_split_and_class"].items():
        vals = [per_class.get(n, 0) for n in names]
        ax.bar(names, vals, bottom=bottom, label=split)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("examples")
    ax.set_title(f"{stats['dataset']} {stats['version']}: examples per class")
    ax.legend()
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    fs.write_bytes(path, buf.getvalue())
