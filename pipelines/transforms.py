"""The Beam pipeline: its elements (typed), its steps and the composite transforms that group them.

    ReadInputs      read-task references -> Record                      (tasks by reference; loader)
    PlanSplits      Record -> Fingerprint -> one dedup.Plan              (a side input; not with --dedup=off)
    EncodeExamples  Record -> Decoded -> Example -> ExampleRef           (+ dead letters, + PixelSums)
    WriteShards     ExampleRef -> (ShardKey, [ExampleRef]) -> shard      (+ one shard info line per shard)
    ChannelStats    PixelSums of the train split -> their total          (stats.json's channel_stats)

Reading: file records are read by the decode step itself (one element per file); a reader that
loads bytes itself (TFDS) passes a `loader` whose read tasks run on the workers. Either way the
read tasks reach the workers as references into one file the driver writes (`write_tasks`).

Writing is two-phase, as in Beam's file sinks: the per-image stage frames each example into a
part file of its bundle and passes on only where it put it (`ExampleRef`); the shard stage
groups those small entries by shard and copies the records, in key order, into the shard.
Example bytes are never shuffled through the runner.

Each step is a plain function (image_ops, splits, shards, channel_stats) or a small DoFn; the
transforms only wire them. Everything a worker writes goes into `_parts/` of the run's temporary
folder; the driver merges it after the job (pipelines.finish).
"""

import collections
import dataclasses
import json
import math
import pickle
import uuid
from collections.abc import Iterable
from typing import NamedTuple

import apache_beam as beam
import numpy as np

import imaging
from pipelines import channel_stats, dedup, exit_gc, image_ops, schema, shards
from pipelines.options import JobOptions
from pipelines.readers import Loader, Record
from storage import fs

PARTS = "_parts"  # per-bundle part files of a run, removed before publishing


# -- the elements ---------------------------------------------------------------------------
class TaskRef(NamedTuple):
    """Where one pickled read task is: a byte range of the tasks file the driver wrote."""

    path: str
    offset: int
    length: int


class Decoded(NamedTuple):
    record: Record  # its split set (the input's own, or the split plan's)
    image: np.ndarray  # HxWxC uint8, validated


class Example(NamedTuple):
    split: str
    label: str  # class name
    key: str
    data: bytes  # a serialized tf.train.Example


class ExampleRef(NamedTuple):
    """Where WriteExampleParts put one framed example."""

    split: str
    key: str
    label: str
    part: str  # part file
    offset: int
    length: int


class ShardKey(NamedTuple):
    split: str
    index: int
    num_shards: int


def parts_dirs(tmp_dir: str) -> dict[str, str]:
    """Where the pipeline's per-bundle part files go (inside the run's temp folder)."""
    return {kind: fs.join(tmp_dir, PARTS, kind) for kind in ("examples", "dead_letter", "shards")}


def dedup_stats_path(tmp_dir: str) -> str:
    return fs.join(tmp_dir, PARTS, "dedup.json")


def channel_stats_path(tmp_dir: str) -> str:
    return fs.join(tmp_dir, PARTS, "channel_stats.json")


# -- read tasks -------------------------------------------------------------------------------
def record_tasks(records: list[Record]) -> list[list[Record]]:
    """File records cut into read tasks: fine enough to balance the workers, at most ~1,024 tasks."""
    size = max(16, math.ceil(len(records) / 1024))
    return [records[i : i + size] for i in range(0, len(records), size)]


def write_tasks(tasks: Iterable, path: str) -> list[TaskRef]:
    """Pickles the read tasks into one file; returns a reference per task.

    The pipeline then carries only these references: a Create of the records themselves
    would be pickled and bz2-compressed into the job graph (seconds for 10,000 images, and
    past Dataflow's 10 MB graph limit for a large dataset).
    """
    refs, offset = [], 0
    with fs.open_write(path) as f:
        for task in tasks:
            blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
            f.write(blob)
            refs.append(TaskRef(path, offset, len(blob)))
            offset += len(blob)
    return refs


def load_task(ref: TaskRef):
    with fs.open_read(ref.path) as f:
        f.seek(ref.offset)
        return pickle.loads(f.read(ref.length))


# -- per-image steps ----------------------------------------------------------------------------
def read_file(record: Record) -> bytes:
    if not record.path.lower().endswith(image_ops.IMAGE_EXTENSIONS):  # not read: it may be anything
        raise imaging.Rejected("unsupported_extension", f"not one of {' '.join(image_ops.IMAGE_EXTENSIONS)}")
    return fs.read_bytes(record.path)


def load_and_decode(record: Record, limits: imaging.Limits, channels: int, plan: dedup.Plan | None = None) -> Decoded:
    """The record's pixels; with a de-duplication `plan`, the record gets its split from it, or is a dead
    letter if it is a dropped copy."""
    if plan is not None:
        if record.key in plan.drop:
            raise imaging.Rejected(*plan.drop[record.key])
        record = dataclasses.replace(record, split=plan.split[record.key])
    if record.data is not None:
        data, record = record.data, dataclasses.replace(record, data=None)  # don't carry the bytes on
    else:
        data = read_file(record)
    return Decoded(record, imaging.decode_array(data, limits, channels))


def make_plan(fingerprints: list[dedup.Fingerprint], opts: JobOptions, stats_path: str) -> dedup.Plan:
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


def make_examples(item: Decoded, opts: JobOptions, label_index: dict[str, int], feats):
    """Original (resized) + augmented copies for train: yields an Example per copy, and for the train split
    each copy's pixel sums (tag `pixels`), taken from the pixels that are encoded."""
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
        if split == channel_stats.SPLIT:
            yield beam.pvalue.TaggedOutput("pixels", channel_stats.of_image(img))
        yield Example(
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
        # The local runner waits for its workers to exit one after the other (exit_gc).
        exit_gc.skip_final_gc()

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
    """Frames each example as a TFRecord into the bundle's part file; yields where it is (ExampleRef).

    Only these small entries cross the runner afterwards: the example bytes are written once
    here and read once by the shard writer, never shuffled (with the multi-process runner
    every shuffled byte goes through the runner process twice).
    """

    def process(self, example: Example):
        framed = shards.tfrecord_frame(example.data)
        path, offset = self._append(framed)
        yield ExampleRef(example.split, example.key, example.label, path, offset, len(framed))


class WriteLineParts(_BundleFile):
    """Writes text lines (dead letters, shard infos) to per-bundle part files the driver merges."""

    def process(self, line: str):
        self._append(line.encode("utf-8") + b"\n")


def keyed_for_shard(ref: ExampleRef, totals: dict[str, int], opts: JobOptions) -> tuple[ShardKey, ExampleRef]:
    n = shards.num_shards_for(totals.get(ref.split, 0), opts.shard_size_mb, opts.num_shards)
    return ShardKey(ref.split, shards.shard_of(ref.key, n), n), ref


def write_one_shard(item: tuple[ShardKey, Iterable[ExampleRef]], tmp_dir: str, dataset: str, compression: str) -> str:
    """Writes one shard from its examples' part-file entries, in key order.

    Returns its JSON line: count, bytes and examples per label and kind.
    """
    shard, refs = item
    refs = sorted(refs, key=lambda r: r.key)
    by_part: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(refs):
        by_part[r.part].append(i)
    framed: list[bytes] = [b""] * len(refs)
    for part, members in sorted(by_part.items()):
        for i, record in zip(members, shards.read_framed(part, [(refs[i].offset, refs[i].length) for i in members])):
            framed[i] = record
    path = fs.join(tmp_dir, schema.shard_name(dataset, shard.split, shard.index, shard.num_shards))
    count, size = shards.write_framed(path, framed, compression.upper())
    per_label: dict = collections.defaultdict(lambda: {"original": 0, "augmented": 0})
    for r in refs:  # counted here, not in a stage of their own: one pass less per example
        per_label[r.label]["augmented" if "#aug" in r.key else "original"] += 1
    return json.dumps(
        {
            "split": shard.split,
            "index": shard.index,
            "num_shards": shard.num_shards,
            "count": count,
            "bytes": size,
            "labels": dict(sorted(per_label.items())),
        },
        sort_keys=True,
    )


class ChannelStatsFn(beam.CombineFn):
    """Adds up PixelSums (exact integers: the total does not depend on how the runner combines them)."""

    def create_accumulator(self) -> channel_stats.PixelSums:
        return channel_stats.EMPTY

    def add_input(self, acc, sums):
        return channel_stats.add(acc, sums)

    def merge_accumulators(self, accs):
        return channel_stats.total(accs)

    def extract_output(self, acc):
        return acc


# -- the composite transforms -------------------------------------------------------------
class ReadInputs(beam.PTransform):
    """The records: from read-task references (`write_tasks`), as they are (files: the decode step reads
    them), or read into memory by `loader` on the workers."""

    def __init__(self, refs: list[TaskRef], loader: Loader | None = None):
        super().__init__()
        self.refs, self.loader = refs, loader

    def expand(self, pbegin):
        tasks = (
            pbegin
            | "ReadTasks" >> beam.Create(self.refs, reshuffle=True).with_output_types(TaskRef)
            | "LoadTask" >> beam.Map(load_task)
        )
        if self.loader is None:
            return tasks | "Records" >> beam.FlatMap(lambda task: task).with_output_types(Record)
        return (
            tasks
            | "ReadBytes" >> beam.FlatMap(self.loader.read).with_output_types(Record)
            | "Spread" >> beam.Reshuffle()  # a read task is large: spread its images over the workers
        )


class PlanSplits(beam.PTransform):
    """Every record's fingerprint, gathered on one worker into the split plan (a singleton); every split
    waits for every fingerprint: one small list on one worker."""

    def __init__(self, opts: JobOptions, tmp_dir: str):
        super().__init__()
        self.opts, self.tmp_dir = opts, tmp_dir

    def expand(self, records):
        return (
            records
            | "Fingerprint" >> beam.Map(dedup.fingerprint, read_file).with_output_types(dedup.Fingerprint)
            | "AllFingerprints" >> beam.combiners.ToList()
            | "Plan" >> beam.Map(make_plan, self.opts, dedup_stats_path(self.tmp_dir)).with_output_types(dedup.Plan)
        )


class EncodeExamples(beam.PTransform):
    """Records -> validated, resized, augmented, encoded examples framed into part files; one fused stage.

    Returns (ExampleRef per example, PixelSums per train example); bad inputs are written as dead
    letters. `plan`: PlanSplits' output as a singleton side input, or None (splits already set).
    """

    def __init__(self, class_names: list[str], opts: JobOptions, tmp_dir: str, plan=None):
        super().__init__()
        self.class_names, self.opts, self.tmp_dir, self.plan = class_names, opts, tmp_dir, plan

    def expand(self, records):
        opts, parts = self.opts, parts_dirs(self.tmp_dir)
        feats = schema.features(self.class_names, opts.channels, opts.encoding, opts.layout, opts.fixed_size)
        label_index = {n: i for i, n in enumerate(self.class_names)}
        limits = imaging.Limits(opts.min_side, opts.max_pixels)
        decoded, failed = records | "DecodeValidate" >> beam.FlatMap(
            decode_or_dead_letter, limits, opts.channels, self.plan
        ).with_outputs("dead", main="decoded")
        _ = failed | "WriteDeadLetter" >> beam.ParDo(WriteLineParts(parts["dead_letter"]))
        examples, pixels = decoded | "ResizeAugmentEncode" >> beam.FlatMap(
            make_examples, opts, label_index, feats
        ).with_outputs("pixels", main="examples")
        refs = examples | "WriteExampleParts" >> beam.ParDo(WriteExampleParts(parts["examples"])).with_output_types(
            ExampleRef
        )
        return refs, pixels


class WriteShards(beam.PTransform):
    """ExampleRefs -> shards (hash of the key; sorted by key inside), each shard's info line into a part file.
    The shard count of a split follows from its bytes unless `num_shards` fixes it."""

    def __init__(self, opts: JobOptions, tmp_dir: str):
        super().__init__()
        self.opts, self.tmp_dir = opts, tmp_dir

    def expand(self, refs):
        opts = self.opts
        totals = {}
        if not opts.num_shards:  # bytes per split -> shard count
            totals = beam.pvalue.AsDict(
                refs
                | "ExampleBytes" >> beam.Map(lambda r: (r.split, r.length)).with_output_types(tuple[str, int])
                | "BytesPerSplit" >> beam.CombinePerKey(sum)
            )
        return (
            refs
            | "AssignShard" >> beam.Map(keyed_for_shard, totals, opts).with_output_types(tuple[ShardKey, ExampleRef])
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(write_one_shard, self.tmp_dir, opts.dataset_name, opts.compression)
            | "WriteShardInfo" >> beam.ParDo(WriteLineParts(parts_dirs(self.tmp_dir)["shards"]))
        )


class ChannelStats(beam.PTransform):
    """PixelSums -> their total, written as JSON to `path` (one small element on one worker)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pixels):
        return (
            pixels
            | "AddUp" >> beam.CombineGlobally(ChannelStatsFn())
            | "Write" >> beam.Map(lambda total, path: fs.write_json(path, total._asdict()), self.path)
        )


def build_pipeline(
    p: beam.Pipeline, refs: list[TaskRef], class_names: list[str], opts: JobOptions, tmp_dir: str, loader=None
) -> None:
    """Wires the composite transforms. One fused stage does all per-image work and writes examples to part
    files; the shard stage then moves only part-file entries through a GroupByKey."""
    records = p | "ReadInputs" >> ReadInputs(refs, loader)
    plan = None
    if opts.dedup != "off":
        plan = beam.pvalue.AsSingleton(records | "PlanSplits" >> PlanSplits(opts, tmp_dir))
    refs_out, pixels = records | "EncodeExamples" >> EncodeExamples(class_names, opts, tmp_dir, plan)
    _ = refs_out | "WriteShards" >> WriteShards(opts, tmp_dir)
    _ = pixels | "ChannelStats" >> ChannelStats(channel_stats_path(tmp_dir))
