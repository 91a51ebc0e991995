"""The download phase on Apache Beam: fetching spread over workers, one ordered commit on the driver.

    python -m crawler.crawl --phase=download --runner=DataflowRunner --out_dir=/mnt/shared/raw \\
        --project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py

1. Driver: the candidates left to decide (`Committer.plan`, as the local runner) are grouped
   into `partitions` by a stable hash (SHA-1) of their URL's host (`partition_by="host"`, the
   default: one host is fetched by one worker) or of the URL itself (`"url"`: spreads a
   single big host over every worker).
2. Workers: one `FetchPartition` call per partition runs `download.fetch_and_stage` (the local
   runner's own fetch, validation and hashing) on a pool of `DownloadConfig.workers` threads.
   Valid images go to <out_dir>/.download/staging/<sha256>.<ext> (written whole:
   content-addressed, so two workers writing one image is harmless), the outcomes to
   <out_dir>/.download/parts/part-XXXXX-of-YYYYY.jsonl (written whole, so a retried bundle
   just rewrites it), each worker process's request counts to parts/worker-<run>-<host>-<pid>.json.
3. Driver: the `Committer` decides every candidate in candidate order from the parts' outcomes:
   the same exact and near de-duplication, cross-class retraction, --max_per_class and
   --max_total_bytes as the local runner, so the manifest is the one the local runner writes.
   Accepted images are moved from staging into <class>/; the work area is then deleted. A
   candidate no worker fetched (its class was full when the job started, then a retraction
   freed a slot) is fetched on the driver.

Politeness is enforced by a `net.Fetcher` per worker process (shared by the threads and the
partitions that process runs): per-host concurrency, request spacing, robots.txt (fetched once
per origin per process) and Retry-After hold PER WORKER PROCESS. Partitioned by host, all of a
host's URLs are fetched by one process, so its limits hold for the whole crawl; with
`partition_by="url"` a host may see up to (worker processes) x --per_host_concurrency
requests in flight and that many request starts per --per_host_delay.

<out_dir> must be storage every worker and the driver can read and write: a local disk for
the DirectRunner, a bucket (gs://, s3://: through the `storage` layer, i.e. Beam's own
filesystems) or a shared mount for Dataflow, Flink or Spark.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import hashlib
import logging as std_logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable

import apache_beam as beam
from absl import logging
from apache_beam.options.pipeline_options import PipelineOptions

from crawler import net
from crawler.candidates import Candidate
from crawler.download import Committer, DownloadConfig, Outcome, fetch_and_stage, finish_stats
from crawler.store import Store
from storage import fs, jsonl

PARTITION_BY = ("host", "url")
DIRECT_RUNNER_DEFAULTS = [
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=0",
    "--default_sdk_harness_log_level=WARNING",
]


def pipeline_args(runner: str, extra: list[str]) -> list[str]:
    """Beam options: `runner` plus the pass-through flags; the DirectRunner runs multi-process on all cores
    unless told otherwise (named explicitly, so Beam never tries to download the Prism runner)."""
    named = {a.split("=")[0] for a in extra}
    pins = [a for a in DIRECT_RUNNER_DEFAULTS if a.split("=")[0] not in named] if runner == "DirectRunner" else []
    return [f"--runner={runner}", *pins, *extra]


def partition_of(url: str, partitions: int, by: str = "host") -> int:
    """A stable partition index (the same on every machine and Python run) for `url`."""
    key = url
    if by == "host":
        with contextlib.suppress(ValueError):  # a URL no worker can fetch: anywhere will do
            key = net.host_key(url)
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % partitions


def make_tasks(urls: Iterable[str], partitions: int, by: str) -> list[tuple[int, int, list[str]]]:
    """(index, count, urls) for every non-empty partition; URLs keep their order inside one."""
    if by not in PARTITION_BY:
        raise ValueError(f"partition_by must be one of {PARTITION_BY}. Received: partition_by={by!r}")
    groups: dict[int, list[str]] = {}
    for url in urls:
        groups.setdefault(partition_of(url, partitions, by), []).append(url)
    return [(i, partitions, groups[i]) for i in sorted(groups)]


def part_path(parts_dir: str, index: int, count: int) -> str:
    return fs.join(parts_dir, f"part-{index:05d}-of-{count:05d}.jsonl")


_FETCHERS: dict[tuple[str, net.FetchConfig], net.Fetcher] = {}
_FETCHERS_LOCK = threading.Lock()


def _process_fetcher(run_id: str, config: net.FetchConfig) -> net.Fetcher:
    """The worker process's Fetcher for this run: one politeness state per process, whatever the
    number of DoFn instances or threads in it."""
    with _FETCHERS_LOCK:
        if (run_id, config) not in _FETCHERS:
            _FETCHERS[(run_id, config)] = net.Fetcher(config)
        return _FETCHERS[(run_id, config)]


class FetchPartition(beam.DoFn):
    """Fetches, validates, hashes and stages one partition's URLs; writes its part file."""

    def __init__(self, out_dir: str, run_id: str, config: DownloadConfig, fetch_config: net.FetchConfig):
        self._out_dir, self._run_id = out_dir, run_id
        self._config, self._fetch_config = config, fetch_config

    def setup(self):
        self._store = Store(self._out_dir)
        self._fetcher = _process_fetcher(self._run_id, self._fetch_config)

    def process(self, task: tuple[int, int, list[str]]):
        index, count, urls = task
        start = time.monotonic()
        fetch = functools.partial(fetch_and_stage, self._fetcher, config=self._config, store=self._store)
        with cf.ThreadPoolExecutor(min(self._config.workers, len(urls)), thread_name_prefix="fetch") as pool:
            outcomes = list(pool.map(fetch, urls))
        path = part_path(self._store.parts_dir, index, count)
        jsonl.write(path, (o.to_json() for o in outcomes))
        worker = f"{socket.gethostname()}-{os.getpid()}"
        with _FETCHERS_LOCK:  # the process's running totals: the last partition it finishes writes them all
            fs.write_json(
                fs.join(self._store.parts_dir, f"worker-{self._run_id}-{worker}.json"),
                {"worker": worker, "requests_per_host": dict(self._fetcher.requests_per_host)},
            )
        logging.info(
            "partition %d of %d: %d URLs in %.1fs on %s", index, count, len(urls), time.monotonic() - start, worker
        )
        yield path


def run_pipeline(
    tasks: list[tuple[int, int, list[str]]],
    out_dir: str,
    run_id: str,
    config: DownloadConfig,
    fetch_config: net.FetchConfig,
    args: list[str],
) -> None:
    std_logging.getLogger("apache_beam").setLevel(std_logging.WARNING)
    with beam.Pipeline(options=PipelineOptions(args)) as p:
        _ = (
            p
            | "Partitions" >> beam.Create(tasks, reshuffle=True)
            | "FetchValidateStage" >> beam.ParDo(FetchPartition(out_dir, run_id, config, fetch_config))
        )


def read_parts(
    store: Store, tasks: list[tuple[int, int, list[str]]], run_id: str
) -> tuple[dict[str, Outcome], dict[str, int], int]:
    """(outcome per URL, requests per host summed over workers, worker count) from the parts."""
    outcomes: dict[str, Outcome] = {}
    for index, count, _urls in tasks:
        path = part_path(store.parts_dir, index, count)
        if not fs.exists(path):
            raise RuntimeError(f"the Beam job finished without writing {path}")
        outcomes.update((o.url, o) for o in (Outcome.from_json(d) for d in jsonl.read_all(path)))
    requests: dict[str, int] = {}
    worker_files = fs.glob(store.parts_dir, f"worker-{run_id}-*.json") if tasks else []
    for path in worker_files:
        for host, n in fs.read_json(path)["requests_per_host"].items():
            requests[host] = requests.get(host, 0) + n
    return outcomes, requests, len(worker_files)


def download_beam(
    candidates: Iterable[Candidate],
    store: Store,
    fetcher: net.Fetcher,
    config: DownloadConfig,
    args: list[str],
    partitions: int = 16,
    partition_by: str = "host",
) -> dict:
    """Runs the download phase as a Beam job; returns (and writes) crawl statistics.

    Args:
      candidates: in their order of preference (the commit order).
      store: the output folder; must be reachable from every worker.
      fetcher: the driver's fetcher; its config is the workers' config, and it fetches what the
        workers did not (a class full at the start, then freed by a retraction).
      config: the download limits (`workers`: threads per partition).
      args: Beam pipeline options, the runner included (see `pipeline_args`).
      partitions: how many groups the URLs are split into (one DoFn call each).
      partition_by: "host" or "url".
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1. Received: partitions={partitions}")
    fs.configure(args)  # the driver reaches the stores with the workers' options (--s3_endpoint_url, ...)
    committer = Committer(store, config)
    todo = committer.plan(candidates)
    store.clear_work()
    wanted = dict.fromkeys(c.url for c in todo if committer.wants_fetch(c) and committer.has_room(c.klass))
    tasks = make_tasks(wanted, partitions, partition_by)
    run_id = uuid.uuid4().hex[:12]
    start = time.monotonic()
    try:
        if tasks:
            logging.info(
                "download: %d URLs in %d partitions (by %s) on %s",
                len(wanted),
                len(tasks),
                partition_by,
                " ".join(args),
            )
            run_pipeline(tasks, store.out_dir, run_id, config, fetcher.config, args)
        fetched_at = time.monotonic()
        outcomes, requests, workers = read_parts(store, tasks, run_id)
        store.open()
        try:
            for c in todo:
                out = outcomes.get(c.url)
                if out is None and committer.wants_fetch(c) and committer.has_room(c.klass):
                    out = outcomes[c.url] = fetch_and_stage(fetcher, c.url, config, store)
                committer.commit(c, out)
                if committer.out_of_bytes:
                    logging.warning("--max_total_bytes reached; stopping the download")
                    break
        finally:
            store.close()
    finally:
        store.clear_work()
    end = time.monotonic()
    for host, n in fetcher.requests_per_host.items():
        requests[host] = requests.get(host, 0) + n
    return finish_stats(
        store,
        committer.run,
        end - start,
        requests,
        {
            "runner": next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "beam"),
            "partitions": len(tasks),
            "partition_by": partition_by,
            "worker_processes": workers,
            "fetch_seconds": round(fetched_at - start, 3),
            "merge_seconds": round(end - fetched_at, 3),
        },
    )
