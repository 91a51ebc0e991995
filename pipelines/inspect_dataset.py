"""Inspects and verifies a folder written by the Beam job.

    python -m pipelines.inspect_dataset workspace/tfrecords/flowers/1.0.0 [--contact_sheet=sheet.png] [--examples=6]

Prints the layout, splits, example counts, classes, the train split's per-channel mean and std
(stats.json's channel_stats) and a few decoded examples (optionally
saved as a contact sheet), then verifies every shard: every record is read with its CRC
checked, parsed with the layout of pipelines/schema.py, its label range-checked, its image
decoded (--nodeep skips that), and the counts are compared with stats.json (and
dataset_info.json when present); the TFDS label file must read back as stats.json's class names. Exits 1 naming the
file and record (0-based index) of every problem found, 0 if all is well; 2 if DIR cannot be
read. DIR may be local or in a bucket (gs://, s3://): shards are read through the storage
layer and checked here (pipelines.shards.read_records), TensorFlow only parses them (imported
when the check starts: --help does not wait for it). Named inspect_dataset, not inspect: a
module named like the standard library's `inspect` shadows it wherever its folder is on the path.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import re
import sys

import numpy as np
from absl import app, flags

import cli
from pipelines import console, exit_gc, schema, shards
from storage import StorageError, fs

_CONTACT_SHEET = flags.DEFINE_string("contact_sheet", None, "Save the decoded examples as a PNG grid here.")
_EXAMPLES = flags.DEFINE_integer("examples", 6, "How many examples to decode and show.", lower_bound=0)
_DEEP = flags.DEFINE_bool(
    "deep",
    True,
    "Decode every image (what the trainer will do); --nodeep checks CRCs, parsing, labels and counts only.",
)

_SHARD_RE = re.compile(r"^(?P<dataset>.+)-(?P<split>[^-.]+)\.tfrecord-(?P<index>\d{5})-of-(?P<n>\d{5})$")
_PARSE_BATCH = 256


@dataclasses.dataclass
class ShardReport:
    path: str
    split: str
    index: int
    count: int = 0  # records read before the end or the first unreadable one
    problems: list[str] = dataclasses.field(default_factory=list)


def load_metadata(data_dir: str) -> dict:
    """stats.json of a folder written by pipelines.build_tfrecords; ValueError if there is none."""
    path = fs.join(data_dir, schema.STATS_FILE)
    if not fs.exists(path):
        raise ValueError(f"{data_dir} has no {schema.STATS_FILE}: not a folder written by pipelines.build_tfrecords")
    return fs.read_json(path)


def _tfds_shard_lengths(data_dir: str) -> dict[str, list[int]] | None:
    path = fs.join(data_dir, "dataset_info.json")
    if not fs.exists(path):
        return None
    info = fs.read_json(path)
    return {s["name"]: [int(n) for n in s.get("shardLengths", [])] for s in info.get("splits", [])}


def _clean(message: str) -> str:
    """TF's op error text without the function-node and op decorations."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", message)
    return re.sub(r"\s*\[Op:.*$", "", message, flags=re.S).strip()


def compression_of(stats: dict, path: str) -> str:
    """'GZIP' or '' for tf.data: from stats.json, else from the gzip magic bytes."""
    if "compression" in stats:
        return stats["compression"].upper()
    with fs.open_read(path) as f:
        return "GZIP" if f.read(2) == b"\x1f\x8b" else ""


def verify_shard(
    path: str,
    split: str,
    index: int,
    layout: str,
    compression: str,
    num_classes: int,
    keys: collections.Counter,
    deep: bool = True,
) -> ShardReport:
    """Reads every record of one shard (CRC-checked), parses it, checks its label and (`deep`)
    decodes its image; collects problems."""
    import tensorflow as tf

    report = ShardReport(path, split, index)
    spec = schema.parse_spec(layout)
    lay = schema.get_layout(layout)
    name = fs.basename(path)
    batch: list[bytes] = []

    def flush():
        if not batch:
            return
        first = report.count - len(batch)
        try:
            parsed = tf.io.parse_example(tf.constant(batch), spec)
        except tf.errors.InvalidArgumentError:  # find the record(s) that do not parse
            for j, record in enumerate(batch):
                try:
                    tf.io.parse_single_example(record, spec)
                except tf.errors.InvalidArgumentError as e:
                    report.problems.append(
                        f"file {name}, record {first + j}: does not parse as a {layout} example ({_clean(e.message)})"
                    )
            batch.clear()
            return
        for j, (label, key) in enumerate(zip(parsed[lay.label_key].numpy(), parsed[lay.key_key].numpy())):
            if not 0 <= label < num_classes:
                report.problems.append(f"file {name}, record {first + j}: label {label} outside 0..{num_classes - 1}")
            keys[key.decode()] += 1
            if deep:
                try:  # a JPEG broken inside a record whose CRC is right: only decoding finds it
                    tf.io.decode_image(parsed[lay.image_key][j], expand_animations=False)
                except tf.errors.OpError as e:
                    report.problems.append(
                        f"file {name}, record {first + j} (key {key.decode()}): image does not "
                        f"decode ({_clean(e.message)})"
                    )
        batch.clear()

    try:
        for record in shards.read_records(path, compression):
            report.count += 1
            batch.append(record)
            if len(batch) >= _PARSE_BATCH:
                flush()
    except shards.CorruptRecord as e:  # bad CRC, truncated record, bad gzip stream
        report.problems.append(f"file {name}, record {e.index}: corrupt ({e.reason})")
    flush()
    return report


def shard_files(data_dir: str, dataset: str) -> dict[str, list[tuple[int, int, str]]]:
    """split -> [(index, num_shards, path)] of the shard files present, sorted."""
    out: dict[str, list[tuple[int, int, str]]] = collections.defaultdict(list)
    for path in fs.glob(data_dir, f"{dataset}-*.tfrecord-*"):
        m = _SHARD_RE.match(fs.basename(path))
        if m and m["dataset"] == dataset:
            out[m["split"]].append((int(m["index"]), int(m["n"]), path))
    return dict(out)


def label_file_problems(data_dir: str, class_names: list[str]) -> list[str]:
    """The TFDS label files (`<feature>.labels.txt`) read back as TFDS reads them (lines stripped,
    empty ones dropped), compared with stats.json's class names."""
    problems = []
    for path in fs.glob(data_dir, "*.labels.txt"):
        names = [line.strip() for line in fs.read_text(path).split("\n") if line.strip()]
        if names != list(class_names):
            first = next(
                (i for i, (a, b) in enumerate(zip(names, class_names)) if a != b), min(len(names), len(class_names))
            )
            problems.append(
                f"file {fs.basename(path)}: TFDS reads {len(names)} class names from it, stats.json has "
                f"{len(class_names)}; they differ first at label {first}: tfds.builder_from_directory "
                "would name the classes wrongly"
            )
    return problems


def verify(data_dir: str, stats: dict, deep: bool = True) -> tuple[list[str], dict[str, list[ShardReport]]]:
    """Every problem of the folder (one line each), and the per-shard reports."""
    problems: list[str] = label_file_problems(data_dir, stats["class_names"])
    layout = stats.get("layout", "tfds")
    classes = stats["class_names"]
    expected_counts = stats.get("examples_per_split", {})
    expected_lengths = stats.get("shard_lengths_per_split")
    tfds_lengths = _tfds_shard_lengths(data_dir)
    if expected_lengths is None:
        expected_lengths = tfds_lengths or {}
    elif tfds_lengths is not None and tfds_lengths != expected_lengths:
        problems.append(
            f"dataset_info.json shard lengths {tfds_lengths} disagree with stats.json "
            f"{expected_lengths}: stale metadata"
        )
    files = shard_files(data_dir, stats["dataset"])
    keys: collections.Counter = collections.Counter()
    reports: dict[str, list[ShardReport]] = {}
    for split in sorted(set(files) | set(expected_counts)):
        present = files.get(split, [])
        lengths = expected_lengths.get(split)
        n_expected = len(lengths) if lengths is not None else (present[0][1] if present else 0)
        indices = {i for i, _, _ in present}
        for i in sorted(set(range(n_expected)) - indices):
            problems.append(f"file {schema.shard_name(stats['dataset'], split, i, n_expected)}: missing")
        split_reports = []
        for index, n, path in present:
            name = fs.basename(path)
            if n != n_expected or index >= n_expected:
                problems.append(f"file {name}: not one of the {n_expected} shards the metadata lists")
            report = verify_shard(path, split, index, layout, compression_of(stats, path), len(classes), keys, deep)
            problems.extend(report.problems)
            if lengths is not None and index < len(lengths) and not report.problems and report.count != lengths[index]:
                problems.append(f"file {name}: {report.count} records, the metadata says {lengths[index]}")
            split_reports.append(report)
        reports[split] = split_reports
        total = sum(r.count for r in split_reports)
        if split in expected_counts and total != expected_counts[split] and not any(r.problems for r in split_reports):
            problems.append(f"split {split}: {total} examples in its shards, stats.json says {expected_counts[split]}")
        if split not in expected_counts:
            problems.append(f"split {split}: shards present but not in stats.json")
    dups = [k for k, c in keys.items() if c > 1]
    if dups:
        problems.append(f"{len(dups)} duplicate keys, e.g. {dups[:3]}")
    return problems, reports


def sample_examples(data_dir: str, stats: dict, count: int) -> list[dict]:
    """Up to `count` decoded examples, taken in turn from each split's first shard."""
    if count <= 0:
        return []
    import tensorflow as tf

    layout = schema.get_layout(stats.get("layout", "tfds"))
    files = shard_files(data_dir, stats["dataset"])
    per_split = {}
    for split, split_shards in sorted(files.items()):
        path = split_shards[0][2]
        records = []
        try:
            for record in shards.read_records(path, compression_of(stats, path)):
                records.append(schema.parse(tf.constant(record), layout.name))
                if len(records) >= count:
                    break
        except (shards.CorruptRecord, tf.errors.OpError):
            pass  # verify() names the problem
        per_split[split] = records
    out = []
    while len(out) < count and any(per_split.values()):
        for split in sorted(per_split):
            if per_split[split] and len(out) < count:
                ex = per_split[split].pop(0)
                image = tf.io.decode_image(ex[layout.image_key], expand_animations=False).numpy()
                label = int(ex[layout.label_key])
                names = stats["class_names"]
                out.append(
                    {
                        "split": split,
                        "key": ex[layout.key_key].numpy().decode(),
                        "label": label,
                        "class": names[label] if 0 <= label < len(names) else "?",
                        "image": image,
                    }
                )
    return out


def contact_sheet(examples: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(examples), 6) or 1
    rows = max(1, -(-len(examples) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ex in zip(axes.flat, examples):
        img = ex["image"]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(f"{ex['class']} ({ex['split']})\n{ex['key'][-24:]}", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    fs.write_bytes(path, buf.getvalue())


def summary_lines(data_dir: str, stats: dict) -> list[str]:
    classes = stats["class_names"]
    lines = [
        f"{data_dir}: {stats['dataset']} {stats['version']}, layout {stats.get('layout', 'tfds')}, "
        f"compression {stats.get('compression') or 'none'}, input {stats.get('input', '?')}",
        f"{len(classes)} classes: {', '.join(classes)}",
    ]
    per_class = stats.get("examples_per_split_and_class", {})
    for split, n in stats.get("examples_per_split", {}).items():
        counts = ", ".join(f"{c}={per_class.get(split, {}).get(c, 0)}" for c in classes)
        lines.append(
            f"  {split}: {n} examples in {stats.get('shards_per_split', {}).get(split, '?')} shard(s) ({counts})"
        )
    cs = stats.get("channel_stats")
    if cs:
        lines.append(
            f"channel stats ({cs['split']}: {cs['images']} images, {cs['pixels']} pixels per channel): mean "
            f"{' '.join(f'{v:.2f}' for v in cs['mean'])}, std {' '.join(f'{v:.2f}' for v in cs['std'])} (0-255)"
        )
    if stats.get("rejected"):
        lines.append(f"rejected inputs: {stats['rejected']} {stats.get('rejected_per_reason', {})}")
    return lines


def main(argv):
    console.quiet_libraries()
    if len(argv) != 2:
        print(f"usage: python -m {__spec__.name} DIR [--contact_sheet=out.png] [--examples=6]", file=sys.stderr)
        return 2
    data_dir = argv[1]
    try:
        fs.preflight(data_dir)
        if _CONTACT_SHEET.value:
            fs.preflight(fs.dirname(_CONTACT_SHEET.value), "--contact_sheet", write=True)
        stats = load_metadata(data_dir)
    except (ValueError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in summary_lines(data_dir, stats):
        print(line, flush=True)
    with console.held_stderr():  # TensorFlow's C++ start-up banners
        import tensorflow as tf

        problems, reports = verify(data_dir, stats, _DEEP.value)
        try:
            examples = sample_examples(data_dir, stats, _EXAMPLES.value)
        except (tf.errors.OpError, ValueError) as e:
            examples = []
            problems.append(f"cannot decode the sample examples: {_clean(str(e))}")
    for ex in examples:
        img = ex["image"]
        print(
            f"  example {ex['split']} {ex['key']}: {ex['class']} (label {ex['label']}), {img.shape[1]}x"
            f"{img.shape[0]}x{img.shape[2]}, mean {np.mean(img):.1f}"
        )
    if _CONTACT_SHEET.value and examples:
        contact_sheet(examples, _CONTACT_SHEET.value)
        print(f"contact sheet: {_CONTACT_SHEET.value}")
    checked = sum(len(r) for r in reports.values())
    records = sum(x.count for r in reports.values() for x in r)
    if problems:
        for p in problems:
            print(f"BAD {p}")
        print(f"error: {len(problems)} problem(s) in {data_dir}; first: {problems[0]}", file=sys.stderr)
        return 1
    checks = "CRC, parse, labels, counts" + (", images decoded" if _DEEP.value else "")
    print(f"OK: {checked} shard(s), {records} records verified ({checks})")
    return 0


def run():
    exit_gc.skip_final_gc()
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
