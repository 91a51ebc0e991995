"""The Beam pipeline: read -> fingerprint -> split plan -> decode/validate (dead letter) ->
resize -> augment -> encode -> deterministic shards; then metadata, stats and publication on
the driver. Splits are cut per class from keys, labels and duplicate groups: by one worker
that sees every input's fingerprint (pipelines.dedup, a side input of the decode step), or
with `--dedup=off` on the driver before the pipeline starts.

Reading: file records are read by the decode step itself (one element per file); a reader
that loads bytes itself (TFDS) passes a `loader` whose read tasks run on the workers. Either
way the read tasks reach the workers as references into one file the driver writes.

Writing is two-phase, as in Beam's file sinks: the per-image stage frames each example into
a part file of its bundle and passes on only where it put it; the shard stage groups those
small entries by shard and copies the records, in key order, into the shard. Example bytes
are never shuffled through the runner.

Each step is a plain function (imaging, image_ops, splits, shards); this module only wires them.
The pipeline writes everything into a temporary folder next to the final one; the driver
merges the part files, publishes the folder (moves the files, the TFDS metadata last) only
when the run succeeded and the share of bad inputs is within `max_bad_fraction`. Every file
goes through the `storage` layer: inputs and output may be local or in a bucket (gs://, s3://).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import math
import os
import pickle
import tempfile
import time
import uuid

import apache_beam as beam
import tensorflow_datasets as tfds
from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions

import imaging
from pipelines import dedup, image_ops, publish, quick_exit, schema, shards, splits
from pipelines.readers import Record
from storage import fs, jsonl, lock

DEAD_LETTER = "dead_letter.jsonl"
STATS = schema.STATS_FILE
HISTOGRAM = "class_histogram.png"
_PARTS = "_parts"  # per-bundle part files of a run, removed before publishing
DUPLICATE_REASONS = ("duplicate", "near_duplicate")  # dead letters of --dedup=drop


@dataclasses.dataclass(frozen=True)
class BuildOptions:
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


class BuildError(RuntimeError):
    """The job ran but its result must not be published (e.g. too many bad images)."""


# -- steps wrapped for Beam (module level so they pickle) --------------------------------
def read_file(record: Record) -> bytes:
    if not record.path.lower().endswith(image_ops.IMAGE_EXTENSIONS):  # not read: it may be anything
        raise imaging.Rejected("unsupported_extension", f"not one of {' '.join(image_ops.IMAGE_EXTENSIONS)}")
    return fs.read_bytes(record.path)


def load_and_decode(record: Record, limits: imaging.Limits, channels: int, plan: dedup.Plan | None = None):
    """(record, pixels); with a de-duplication `plan`, the record gets its split from it, or is a dead
    letter if it is a dropped copy."""
    if plan is not None:
        if record.key in plan.drop:
            raise imaging.Rejected(*plan.drop[record.key])
        record = dataclasses.replace(record, split=plan.split[record.key])
    if record.data is not None:
        data, record = record.data, dataclasses.replace(record, data=None)  # don't carry the bytes on
    else:
        data = read_file(record)
    return record, imaging.decode_array(data, limits, channels)


def make_plan(fingerprints: list, opts: BuildOptions, stats_path: str) -> dedup.Plan:
    """The de-duplication plan (one worker sees every fingerprint); its findings go to `stats_path`."""
    plan = dedup.plan(
        fingerprints, opts.dedup, opts.dedup_distance, opts.splits, opts.split_salt, opts.keep_input_splits
    )
    fs.write_json(stats_path, plan.stats)
    return plan


def reason_and_detail(exc: Exception) -> tuple[str, str]:
    """A stable snake_case reason code and a human detail for a failed input."""
    if isinstance(exc, imaging.Rejected):
        return exc.reason, exc.detail
    detail = imaging.without_addresses(f"{type(exc).__name__}: {exc}")
    return ("read_error" if isinstance(exc, OSError) else "error"), detail


def dead_letter_line(record: Record, exc: Exception, stage: str) -> str:
    reason, detail = reason_and_detail(exc)
    return json.dumps(
        {
            "key": record.key,
            "source": record.source or record.path,
            "path": record.path,
            "label": record.label,
            "stage": stage,
            "reason": reason,
            "detail": detail,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def decode_or_dead_letter(record: Record, limits: imaging.Limits, channels: int, plan=None):
    """load_and_decode, or a dead letter line (tag `dead`) with the reason code and detail.

    Beam's `with_exception_handling` hands on only the exception's repr; the code and the
    detail are kept apart here, so dead_letter.jsonl and stats.json read the same every run.
    """
    try:
        yield load_and_decode(record, limits, channels, plan)
    except Exception as e:  # noqa: BLE001 - every failure of one input is that input's dead letter
        yield beam.pvalue.TaggedOutput("dead", dead_letter_line(record, e, "decode"))


def make_examples(item, opts: BuildOptions, label_index: dict[str, int], feats):
    """Original (resized) + augmented copies for train; yields (split, label, key, serialized)."""
    record, image = item
    split = record.split
    image = image_ops.resize(image, opts.image_size, opts.resize)
    label = label_index[record.label]
    variants = [(record.key, "", image)]
    if split == "train":
        for k in range(opts.augment_copies):
            aug = image_ops.augment(image, record.key, k, opts.seed, opts.augment)
            variants.append((f"{record.key}#aug{k}", record.key, aug))
    for key, parent, img in variants:
        data = image_ops.encode(img, opts.encoding, opts.jpeg_quality)
        yield (
            split,
            record.label,
            key,
            schema.serialize(
                feats,
                image=data,
                label=label,
                key=key,
                parent_key=parent,
                source=record.source,
                class_name=record.label,
                height=img.shape[0],
                width=img.shape[1],
                fmt=opts.encoding,
            ),
        )


class _BundleFile(beam.DoFn):
    """Appends what one bundle writes to a file of its own under `parts_dir` (a new name per attempt).

    Beam's own file sinks work the same way (a temp file per bundle, finalised later): a
    retried bundle leaves a file nothing points to, and the whole folder is removed at the end.
    """

    def __init__(self, parts_dir: str):
        self.parts_dir = parts_dir

    def setup(self):
        # The local runner waits for its workers to exit one after the other (quick_exit).
        quick_exit.skip_final_gc()

    def start_bundle(self):
        self._file, self._path, self._offset = None, "", 0

    def _append(self, data: bytes) -> tuple[str, int]:
        if self._file is None:
            self._path = fs.join(self.parts_dir, uuid.uuid4().hex)
            self._file = fs.open_write(self._path)
        offset = self._offset
        self._file.write(data)
        self._offset += len(data)
        return self._path, offset

    def finish_bundle(self):
        if self._file is not None:
            self._file.close()
            self._file = None


class WriteExampleParts(_BundleFile):
    """Frames each example as a TFRecord into the bundle's part file; yields where it is.

    Only these small entries (split, key, label, part file, offset, length) cross the
    runner afterwards: the example bytes are written once here and read once by the shard
    writer, never shuffled (with the multi-process runner every shuffled byte goes
    through the runner process twice).
    """

    def process(self, example):
        split, label, key, data = example
        framed = shards.tfrecord_frame(data)
        path, offset = self._append(framed)
        yield split, key, label, path, offset, len(framed)


class WriteLineParts(_BundleFile):
    """Writes text lines (dead letters, shard infos) to per-bundle part files the driver merges."""

    def process(self, line: str):
        self._append(line.encode("utf-8") + b"\n")


def keyed_for_shard(entry, totals: dict, opts: BuildOptions):
    split, key = entry[0], entry[1]
    n = shards.num_shards_for(totals.get(split, 0), opts.shard_size_mb, opts.num_shards)
    return (split, shards.shard_of(key, n), n), entry


def write_one_shard(item, tmp_dir: str, dataset: str, compression: str = "") -> str:
    """Writes one shard from its examples' part-file entries, in key order.

    Returns its JSON line: count, bytes and examples per label and kind.
    """
    (split, index, n), entries = item
    entries = sorted(entries, key=lambda e: e[1])
    by_file: dict[str, list[int]] = collections.defaultdict(list)
    for i, e in enumerate(entries):
        by_file[e[3]].append(i)
    framed: list[bytes] = [b""] * len(entries)
    for part, members in sorted(by_file.items()):
        for i, record in zip(members, shards.read_framed(part, [(entries[i][4], entries[i][5]) for i in members])):
            framed[i] = record
    path = fs.join(tmp_dir, schema.shard_name(dataset, split, index, n))
    count, size = shards.write_framed(path, framed, compression.upper())
    per_label: dict = collections.defaultdict(lambda: {"original": 0, "augmented": 0})
    for _, key, label, *_ in entries:  # counted here, not in a stage of their own: one pass less per example
        per_label[label]["augmented" if "#aug" in key else "original"] += 1
    return json.dumps(
        {
            "split": split,
            "index": index,
            "num_shards": n,
            "count": count,
            "bytes": size,
            "labels": dict(sorted(per_label.items())),
        },
        sort_keys=True,
    )


# -- the pipeline -------------------------------------------------------------------------
def record_tasks(records: list[Record]) -> list[list[Record]]:
    """File records cut into read tasks: fine enough to balance the workers, at most ~1,024 tasks."""
    size = max(16, math.ceil(len(records) / 1024))
    return [records[i : i + size] for i in range(0, len(records), size)]


def write_tasks(tasks: list, path: str) -> list[tuple[str, int, int]]:
    """Pickles the read tasks into one file; returns a (file, offset, length) reference per task.

    The pipeline then carries only these references: a Create of the records themselves
    would be pickled and bz2-compressed into the job graph (seconds for 10,000 images, and
    past Dataflow's 10 MB graph limit for a large dataset).
    """
    refs, offset = [], 0
    with fs.open_write(path) as f:
        for task in tasks:
            blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            f.write(blob)
            refs.append((path, offset, len(blob)))
            offset += len(blob)
    return refs


def load_task(ref: tuple[str, int, int]):
    path, offset, length = ref
    with fs.open_read(path) as f:
        f.seek(offset)
        return pickle.loads(f.read(length))


def read_records(p: beam.Pipeline, records: list[Record], tmp_dir: str, loader=None):
    """The records as a PCollection: as they are (files), or read into memory by `loader` on the workers.

    Read tasks travel as references into a file the driver wrote (see write_tasks).
    """
    tasks = loader.tasks(records) if loader is not None else record_tasks(records)
    refs = write_tasks(tasks, fs.join(tmp_dir, _PARTS, "tasks.pkl"))
    loaded = p | "ReadTasks" >> beam.Create(refs, reshuffle=True) | "LoadTask" >> beam.Map(load_task)
    if loader is None:
        return loaded | "Records" >> beam.FlatMap(lambda task: task)
    return (
        loaded | "ReadBytes" >> beam.FlatMap(loader.read) | "Spread" >> beam.Reshuffle()
    )  # a read task is large: spread its images over the workers


def parts_dirs(tmp_dir: str) -> dict[str, str]:
    """Where the pipeline's per-bundle part files go (inside the run's temp folder)."""
    return {kind: fs.join(tmp_dir, _PARTS, kind) for kind in ("examples", "dead_letter", "shards")}


def dedup_stats_path(tmp_dir: str) -> str:
    return fs.join(tmp_dir, _PARTS, "dedup.json")


def build_pipeline(
    p: beam.Pipeline, records: list[Record], class_names: list[str], opts: BuildOptions, tmp_dir: str, loader=None
) -> None:
    """Wires the steps. One fused stage does all per-image work and writes examples to part
    files; the shard stage then moves only part-file entries through a GroupByKey."""
    feats = schema.features(class_names, opts.channels, opts.encoding, opts.layout, opts.fixed_size)
    label_index = {n: i for i, n in enumerate(class_names)}
    limits = imaging.Limits(opts.min_side, opts.max_pixels)
    parts = parts_dirs(tmp_dir)

    inputs = read_records(p, records, tmp_dir, loader)
    plan = None
    if opts.dedup != "off":  # every split waits for every fingerprint: one small list on one worker
        plan = beam.pvalue.AsSingleton(
            inputs
            | "Fingerprint" >> beam.Map(dedup.fingerprint, read_file)
            | "AllFingerprints" >> beam.combiners.ToList()
            | "PlanSplits" >> beam.Map(make_plan, opts, dedup_stats_path(tmp_dir))
        )
    decoded, failed = inputs | "DecodeValidate" >> beam.FlatMap(
        decode_or_dead_letter, limits, opts.channels, plan
    ).with_outputs("dead", main="decoded")
    _ = failed | "WriteDeadLetter" >> beam.ParDo(WriteLineParts(parts["dead_letter"]))

    entries = (
        decoded
        | "ResizeAugmentEncode" >> beam.FlatMap(make_examples, opts, label_index, feats)
        | "WriteExampleParts" >> beam.ParDo(WriteExampleParts(parts["examples"]))
    )
    totals = (
        None
        if opts.num_shards
        # bytes per split -> shard count
        else (entries | "ExampleBytes" >> beam.Map(lambda e: (e[0], e[5])) | "BytesPerSplit" >> beam.CombinePerKey(sum))
    )
    _ = (
        entries
        | "AssignShard" >> beam.Map(keyed_for_shard, {} if opts.num_shards else beam.pvalue.AsDict(totals), opts)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShard" >> beam.Map(write_one_shard, tmp_dir, opts.dataset_name, opts.compression)
        | "WriteShardInfo" >> beam.ParDo(WriteLineParts(parts["shards"]))
    )


def _read_part_lines(folder: str, unique_by) -> list[dict]:
    """The JSON lines of every part file in `folder`, one per `unique_by(line)` (a retried bundle
    may have written its lines twice), sorted by it: the merged file does not depend on workers.

    A bundle attempt that died mid-write can leave a torn last line; the retry wrote it whole,
    so an unparsable line without its newline is skipped (with a warning); any other raises.
    """
    lines: dict = {}
    for path in fs.glob(folder, "*"):
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


def with_splits(records: list[Record], opts: BuildOptions) -> list[Record]:
    """Assigns every record its split: the input's own, or stratified per class by a salted hash.

    Done on the driver from keys and labels only (cheap metadata), so the pipeline never
    has to join image data with split assignments.
    """
    if opts.keep_input_splits:
        return records
    split_list = splits.parse_splits(opts.splits)
    by_class: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for r in records:
        by_class[r.label].append((r.key, r.group))
    assigned: dict[str, str] = {}
    for members in by_class.values():
        assigned.update(splits.assign_splits(members, split_list, opts.split_salt))
    return [dataclasses.replace(r, split=assigned[r.key]) for r in records]


def run_build(
    records: list[Record],
    class_names: list[str],
    opts: BuildOptions,
    pipeline_args: list[str],
    input_desc: str,
    loader=None,
    rejected: list[dict] = (),
) -> dict:
    """Runs the pipeline and publishes <output_dir>/<dataset>/<version>/; returns the stats.

    The version's lock is held from before any work to the end of publishing (another build of
    that version is refused, naming it); what a killed build left is finished or deleted first
    (pipelines.publish).

    Args:
      records: every input, with its label (and its split with `keep_input_splits`).
      class_names: label order; every record's label must be one of them.
      opts: the job's options.
      pipeline_args: Beam pipeline options.
      input_desc: a few words naming the input, for messages and metadata.
      loader: optional worker-side reader (`tasks(records)`, `read(task)`), e.g. readers.TfdsSource.
      rejected: dead letters the reader found before the job (e.g. a bad manifest line).
    """
    fs.configure(pipeline_args)  # the driver reaches the stores with the workers' options (--s3_endpoint_url, ...)
    dataset_dir = fs.join(opts.output_dir, opts.dataset_name)
    with lock.hold(dataset_dir, f"build of {opts.dataset_name} {opts.version}", publish.lock_name(opts.version)):
        publish.recover(dataset_dir, opts.version)
        return _build_locked(records, class_names, opts, pipeline_args, input_desc, loader, list(rejected))


def _build_locked(records, class_names, opts: BuildOptions, pipeline_args, input_desc, loader, rejected) -> dict:
    start = time.time()
    if opts.dedup == "off":
        records = with_splits(records, opts)
    final = opts.final_dir
    dataset_dir = fs.dirname(final)
    tmp_dir = publish.incomplete_dir(dataset_dir, opts.version)
    for folder in parts_dirs(tmp_dir).values():
        fs.makedirs(folder)
    if rejected:  # merged with the workers' dead letters
        jsonl.write(fs.join(parts_dirs(tmp_dir)["dead_letter"], "reader.jsonl"), rejected)
    publishing = False
    try:
        options = PipelineOptions(pipeline_args)
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, records, class_names, opts, tmp_dir, loader)
        stats = _finish(records, class_names, opts, tmp_dir, time.time() - start, input_desc, len(rejected))
        if fs.exists(fs.join(final, STATS)) and not opts.overwrite:  # checked at the start too; made sure here
            raise BuildError(f"{final} was published while this build ran: pass --overwrite to replace it")
        publishing = True
        publish.publish(tmp_dir, dataset_dir, opts.version)
    except BaseException:
        if publishing:  # the new folder is complete: the next build of this version finishes the publish
            logging.error("publishing %s failed midway; the next build of this version finishes it", final)
            raise
        try:
            fs.rmtree(tmp_dir)
        except (OSError, fs.StorageError) as e:  # the store that failed the job may refuse this too
            logging.warning("could not remove %s: %s", tmp_dir, e)
        raise
    logging.info("published %s", final)
    return stats


def _finish(
    records, class_names, opts: BuildOptions, tmp_dir: str, seconds: float, input_desc: str, rejected_by_reader: int = 0
) -> dict:
    parts = parts_dirs(tmp_dir)
    dead = _read_part_lines(parts["dead_letter"], lambda d: d["key"])
    shard_infos = _read_part_lines(parts["shards"], lambda s: (s["split"], s["index"]))
    duplicates = fs.read_json(dedup_stats_path(tmp_dir)) if opts.dedup != "off" else {"mode": "off"}
    fs.rmtree(fs.join(tmp_dir, _PARTS))
    jsonl.write(fs.join(tmp_dir, DEAD_LETTER), dead)  # sorted by key, empty if none
    counts = [
        {"split": s["split"], "label": label, "kind": kind, "count": n}
        for s in shard_infos
        for label, kinds in s["labels"].items()
        for kind, n in kinds.items()
        if n
    ]
    _check_no_class_lost(records, counts, dead)
    inputs = len(records) + rejected_by_reader
    bad = [d for d in dead if d["reason"] not in DUPLICATE_REASONS]  # a dropped copy is not a bad input
    bad_fraction = len(bad) / max(1, inputs)
    if bad_fraction > opts.max_bad_fraction:
        raise BuildError(
            f"{len(bad)} of {inputs} inputs are bad ({bad_fraction:.1%} > --max_bad_fraction="
            f"{opts.max_bad_fraction}); see the dead letter reasons, e.g. {_example(bad[0])!r}"
        )
    if not shard_infos:
        raise BuildError(f"no valid image in {input_desc}: nothing to write")
    by_split: dict[str, list[dict]] = collections.defaultdict(list)
    for s in shard_infos:
        by_split[s["split"]].append(s)
    split_infos = []
    for split, infos in sorted(by_split.items()):
        n = infos[0]["num_shards"]
        lengths = [0] * n
        for s in infos:
            lengths[s["index"]] = s["count"]
        for i in range(n):  # a shard that got no example still has to exist for TFDS
            if not lengths[i]:
                empty = fs.join(tmp_dir, schema.shard_name(opts.dataset_name, split, i, n))
                _, size = shards.write_shard(empty, [], opts.compression.upper())
                infos.append({"index": i, "count": 0, "bytes": size})
        split_infos.append(
            tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=sum(s["bytes"] for s in infos))
        )
    if not opts.compression:  # TFDS reads uncompressed TFRecords only: no metadata that would promise it can
        _write_tfds_metadata(tmp_dir, class_names, opts, split_infos, input_desc)
    per_split_class: dict = collections.defaultdict(lambda: collections.defaultdict(int))
    augmented: dict = collections.defaultdict(int)
    for c in counts:
        per_split_class[c["split"]][c["label"]] += c["count"]
        if c["kind"] == "augmented":
            augmented[c["split"]] += c["count"]
    stats = {
        "dataset": opts.dataset_name,
        "version": opts.version,
        "input": input_desc,
        "layout": opts.layout,
        "layout_version": schema.LAYOUT_VERSION,
        "compression": opts.compression,
        "class_names": class_names,
        "channels": opts.channels,
        "inputs": inputs,
        "rejected": len(dead),
        "duplicates": duplicates,
        "rejected_per_reason": dict(sorted(collections.Counter(d["reason"] for d in dead).items())),
        "examples_per_split": {s: sum(v.values()) for s, v in sorted(per_split_class.items())},
        "examples_per_split_and_class": {s: dict(sorted(v.items())) for s, v in sorted(per_split_class.items())},
        "augmented_per_split": dict(augmented),
        "bytes_per_split": {si.name: si.num_bytes for si in split_infos},
        "shards_per_split": {si.name: len(si.shard_lengths) for si in split_infos},
        "shard_lengths_per_split": {si.name: list(si.shard_lengths) for si in split_infos},
        "wall_time_seconds": round(seconds, 2),
        "options": {k: v for k, v in dataclasses.asdict(opts).items() if k != "augment"},
        "augment": dataclasses.asdict(opts.augment),
    }
    fs.write_json(fs.join(tmp_dir, STATS), stats)
    _histogram(stats, fs.join(tmp_dir, HISTOGRAM))
    return stats


def _write_tfds_metadata(tmp_dir: str, class_names, opts: BuildOptions, split_infos, input_desc: str) -> None:
    """dataset_info.json, features.json and the label file, by `tfds.folder_dataset.write_metadata`.

    TFDS writes through TensorFlow's file layer, which has no s3://; so it writes into a local
    folder (holding empty stand-ins named like the shards, from which it reads the file name
    template) and the files are copied to `tmp_dir` through the storage layer, wherever it is.
    """
    layout = schema.get_layout(opts.layout)
    feats = schema.features(class_names, opts.channels, opts.encoding, opts.layout, opts.fixed_size)
    with tempfile.TemporaryDirectory(prefix="tfds-metadata-") as local:
        for si in split_infos:
            for i in range(len(si.shard_lengths)):
                open(
                    os.path.join(local, schema.shard_name(opts.dataset_name, si.name, i, len(si.shard_lengths))), "wb"
                ).close()
        before = set(os.listdir(local))
        tfds.folder_dataset.write_metadata(
            data_dir=local,
            features=feats,
            split_infos=split_infos,
            version=opts.version,
            filename_template=schema.SHARD_TEMPLATE,
            supervised_keys=layout.supervised_keys,
            check_data=False,
            description=f"Built by flowerpipe's Beam job from {input_desc} (example layout {opts.layout} "
            f"v{schema.LAYOUT_VERSION}).",
        )
        for name in sorted(set(os.listdir(local)) - before):
            fs.copy(os.path.join(local, name), fs.join(tmp_dir, name))


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


def _histogram(stats: dict, path: str) -> None:
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
