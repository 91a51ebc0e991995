"""One build of a dataset version, on the driver: lock, read tasks, the Beam job, finish, publish.

    run_build: hold <dataset>/.lock-<version> -> finish what killed builds left (pipelines.publish)
      -> splits on the driver (only with --dedup=off) -> write the read tasks -> run the pipeline
      (pipelines.transforms) -> merge and check the workers' output, write metadata and stats
      (pipelines.finish) -> publish the folder

Splits are cut per class from keys, labels and duplicate groups: by one worker that sees every
input's fingerprint (pipelines.dedup, a side input of the decode step), or with `--dedup=off` on
the driver before the pipeline starts. The pipeline writes everything into a temporary folder
next to the final one; the driver publishes it (moves the files, the TFDS metadata last) only
when the run succeeded and the share of bad inputs is within `max_bad_fraction`. Every file goes
through the `storage` layer: inputs and output may be local or in a bucket (gs://, s3://).

The driver says what it does, one log line each, with counts and times (README: "What a build
prints").
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time

import apache_beam as beam
from absl import logging
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
    WorkerOptions,
)

from pipelines import publish, splits, transforms
from pipelines.finish import STATS, BuildError, finish
from pipelines.options import JobOptions
from pipelines.readers import Input, Record
from storage import fs, jsonl, lock

__all__ = ["BuildError", "JobOptions", "run_build", "with_splits"]  # BuildError, JobOptions: for callers


def with_splits(records: list[Record], opts: JobOptions) -> list[Record]:
    """Assigns every record its split: the input's own, or stratified per class by a salted hash.

    Done on the driver from keys and labels only (cheap metadata), so the pipeline never
    has to join image data with split assignments.
    """
    if opts.keep_input_splits:
        return records
    split_list = splits.parse_splits(opts.splits)
    by_class: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for r in records:
        by_class[r.label].append((r.key, ""))
    assigned: dict[str, str] = {}
    for members in by_class.values():
        assigned.update(splits.assign_splits(members, split_list, opts.split_salt))
    return [dataclasses.replace(r, split=assigned[r.key]) for r in records]


def describe_runner(options: PipelineOptions) -> str:
    """The runner and its workers, in a few words: 'DirectRunner (multi_processing, 2 workers)'."""
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner.rsplit(".", 1)[-1]
    if name.endswith("DirectRunner"):
        direct = options.view_as(DirectOptions)
        mode = direct.direct_running_mode
        n = 1 if mode == "in_memory" else (direct.direct_num_workers or os.cpu_count() or 1)
        return f"{name} ({mode}, {n} worker{'s' if n != 1 else ''})"
    portable = options.view_as(PortableOptions)
    workers = options.view_as(WorkerOptions)
    parts = [
        f"job endpoint {portable.job_endpoint}" if portable.job_endpoint else "",
        f"{portable.environment_type} workers" if portable.environment_type else "",
        f"{workers.num_workers} workers" if workers.num_workers else "",
        f"at most {workers.max_num_workers} workers" if workers.max_num_workers else "",
    ]
    described = ", ".join(p for p in parts if p)
    return f"{name} ({described})" if described else name


def run_build(inp: Input, opts: JobOptions, pipeline_args: list[str]) -> dict:
    """Runs the pipeline and publishes <output_dir>/<dataset>/<version>/; returns the stats.

    The version's lock is held from before any work to the end of publishing (another build of
    that version is refused, naming it); what a killed build left is finished or deleted first
    (pipelines.publish).

    Args:
      inp: what a reader read (pipelines.readers.load): records (with their split when the input's
        own splits are kept), label order, the reader's dead letters, its worker-side loader.
      opts: the job's options.
      pipeline_args: Beam pipeline options.
    """
    fs.configure(pipeline_args)  # the driver reaches the stores with the workers' options (--s3_endpoint_url, ...)
    dataset_dir = fs.join(opts.output_dir, opts.dataset_name)
    with lock.hold(dataset_dir, f"build of {opts.dataset_name} {opts.version}", publish.lock_name(opts.version)):
        publish.recover(dataset_dir, opts.version)
        return _build_locked(inp, opts, pipeline_args)


def _build_locked(inp: Input, opts: JobOptions, pipeline_args: list[str]) -> dict:
    start = time.time()
    if opts.dedup == "off":
        inp = dataclasses.replace(inp, records=with_splits(inp.records, opts))
    final = opts.final_dir
    dataset_dir = fs.dirname(final)
    tmp_dir = publish.incomplete_dir(dataset_dir, opts.version)
    parts = transforms.parts_dirs(tmp_dir)
    for folder in parts.values():
        fs.makedirs(folder)
    if inp.rejected:  # merged with the workers' dead letters
        jsonl.write(fs.join(parts["dead_letter"], "reader.jsonl"), inp.rejected)
    publishing = False
    try:
        t = time.time()
        tasks = inp.loader.tasks(inp.records) if inp.loader is not None else transforms.record_tasks(inp.records)
        refs = transforms.write_tasks(tasks, fs.join(tmp_dir, transforms.PARTS, "tasks.pkl"))
        logging.info("read tasks: %d written (%d records) in %.1fs", len(refs), len(inp.records), time.time() - t)
        options = PipelineOptions(pipeline_args)
        logging.info("job: started on %s", describe_runner(options))
        t = time.time()
        with beam.Pipeline(options=options) as p:
            transforms.build_pipeline(p, refs, inp.class_names, opts, tmp_dir, inp.loader)
        logging.info("job: finished in %.1fs", time.time() - t)
        t = time.time()
        stats = finish(inp, opts, tmp_dir, time.time() - start)
        logging.info(
            "merged: %d shard(s), %s bytes, %d dead letter(s); metadata written in %.1fs",
            sum(stats["shards_per_split"].values()),
            f"{sum(stats['bytes_per_split'].values()):,}",
            stats["rejected"],
            time.time() - t,
        )
        if fs.exists(fs.join(final, STATS)) and not opts.overwrite:  # checked at the start too
            raise BuildError(f"{final} was published while this build ran: pass --overwrite to replace it")
        publishing = True
        t = time.time()
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
    logging.info("published: %s in %.1fs", final, time.time() - t)
    return stats
