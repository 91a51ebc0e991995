"""Crawls flower images: discover candidate URLs, then download, validate and de-duplicate.

    python -m crawler.crawl --source=html --url_template='http://127.0.0.1:8000/search?q={query}' \\
        --classes=all --out_dir=workspace/raw --allow_private_hosts

Phases (`--phase`): `discover` writes <out_dir>/candidates.jsonl; `download` reads it and
fills <out_dir>/<class>/<sha256>.<ext>, manifest.jsonl, rejected.jsonl and
crawl_stats.json; `all` runs both. Re-running resumes: nothing already decided is fetched
again. --out_dir (and --urls_file) may be local paths or buckets (gs://, s3://; see
WORKSPACE.md for what a kill leaves on each); a bucket that does not exist, refuses access
or does not answer stops the crawl before any request, exit 2.

The download runs on a local thread pool (`--runner=local`), or as an Apache Beam job
(`--runner=DirectRunner`, `DataflowRunner`, `FlinkRunner`, `SparkRunner`, ...: see
crawler/distributed.py) that spreads the fetching over workers and ends with the same
manifest. Flags this program does not know are Beam pipeline options and pass through, e.g.
`--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp --setup_file=./setup.py`.
The DirectRunner runs multi-process on all cores unless `--direct_running_mode` or
`--direct_num_workers` say otherwise. Per-host politeness limits hold per Beam worker process.

One crawl at a time writes into an --out_dir: the crawl holds the folder's lock
(<out_dir>/.lock, see storage/lock.py) for both phases, whatever the runner; a second one
stops before any work, naming the first (its pid and host). A lock left by a crawl that was
killed is taken over with a warning.

Exit codes: 0 done; 1 the work ran and failed (no candidate found, a disk that filled up, a
store that failed mid-way: one `error:` line; the same command resumes); 2 a flag, path or
folder the program cannot use, or a folder in use (one `error:` line, before any work).
"""

from __future__ import annotations

import json
import os
import sys
import uuid

from absl import app, flags, logging

import cli
from cli.console import quiet_libraries
from crawler import net
from crawler.candidates import read_candidates, write_candidates
from crawler.classes import parse_classes
from crawler.discovery import discover
from crawler.download import DownloadConfig, download
from crawler.sources import SourceOptions, get_source, source_names
from crawler.store import CANDIDATES, Store, writing
from imaging import Limits
from storage import StorageError, fs, lock

_PHASE = flags.DEFINE_enum("phase", "all", ["discover", "download", "all"], "Which phase to run.")
_SOURCE = flags.DEFINE_string("source", "html", f"Image source: one of {', '.join(source_names())}.")
_CLASSES = flags.DEFINE_string("classes", "all", "Comma list of class names (e.g. daisy,rose), or 'all'.")
_OUT_DIR = flags.DEFINE_string(
    "out_dir",
    "workspace/raw",
    "Output folder (images, manifest.jsonl, ...): a local path, gs://bucket/... or s3://bucket/....",
)
_URL_TEMPLATE = flags.DEFINE_string(
    "url_template",
    "",
    "html source: result page URL with {query} "
    "(and optionally {page}); bing/baidu/commons: an endpoint to use instead of "
    "the real site (e.g. a local test server).",
)
_START_URL = flags.DEFINE_string("start_url", "", "html source: a single start page (needs exactly one class).")
_URLS_FILE = flags.DEFINE_string("urls_file", "", "urls source: a file of url,class lines.")
_ALLOWED_HOSTS = flags.DEFINE_list("allowed_hosts", [], "Extra hosts the html source may follow pages to.")
_MAX_PAGES = flags.DEFINE_integer("max_pages", 10, "Result pages per query at most.", lower_bound=1)
_WORKERS = flags.DEFINE_integer(
    "workers", 16, "Download threads (global pool; with a Beam runner: per partition).", lower_bound=1
)
_RUNNER = flags.DEFINE_string(
    "runner",
    "local",
    "Download runner: 'local' (a thread pool in this process) or a Beam "
    "runner (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner, ...); unknown flags are "
    "then Beam pipeline options.",
)
_PARTITIONS = flags.DEFINE_integer(
    "partitions", 16, "Beam runner: groups the URLs are split into (one worker call each).", lower_bound=1
)
_PARTITION_BY = flags.DEFINE_enum(
    "partition_by",
    "host",
    ["host", "url"],
    "Beam runner: partition URLs by a hash "
    "of their host (a host's politeness lives in one worker) or of the URL (spreads one "
    "big host over all workers; per-host limits then hold per worker process).",
)
_MAX_PER_CLASS = flags.DEFINE_integer("max_per_class", 1000, "Accepted images per class at most.", lower_bound=1)
_MAX_TOTAL_BYTES = flags.DEFINE_integer(
    "max_total_bytes", 10 * 1024**3, "Stop after accepting this many bytes.", lower_bound=1
)
_MAX_IMAGE_BYTES = flags.DEFINE_integer(
    "max_image_bytes", 20 * 1024**2, "Byte cap per download (streamed; Content-Length is not trusted).", lower_bound=1
)
_MIN_SIDE = flags.DEFINE_integer("min_side", 64, "Reject images whose shorter side is below this.", lower_bound=1)
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", 40_000_000, "Reject images with more pixels (decompression bombs).", lower_bound=1
)
_DEDUP_DISTANCE = flags.DEFINE_integer(
    "dedup_distance",
    6,
    "Perceptual-hash Hamming distance (of 64 bits) at or below which two images are near-duplicates.",
    lower_bound=0,
    upper_bound=64,
)
_ALLOW_PRIVATE = flags.DEFINE_bool(
    "allow_private_hosts",
    False,
    "Allow loopback/private addresses "
    "(needed for the local flower site); link-local and cloud metadata "
    "addresses stay refused.",
)
_CONTACT_URL = flags.DEFINE_string("contact_url", net.FetchConfig.contact_url, "Contact URL sent in the User-Agent.")
_PER_HOST_CONCURRENCY = flags.DEFINE_integer("per_host_concurrency", 4, "Requests in flight per host.", lower_bound=1)
_PER_HOST_DELAY = flags.DEFINE_float(
    "per_host_delay",
    0.1,
    "Seconds between request starts on one host (robots.txt Crawl-delay wins if larger).",
    lower_bound=0,
)
_TIMEOUT = flags.DEFINE_float(
    "timeout",
    10.0,
    "Connect timeout, and read timeout (longest wait for the headers or for any byte of the body), seconds.",
    lower_bound=0.1,
)
_DEADLINE = flags.DEFINE_float(
    "deadline", 30.0, "Total seconds for one download: retries, backoff, redirects and body included.", lower_bound=0.1
)
_RETRIES = flags.DEFINE_integer(
    "retries",
    3,
    "Retries on 429/500/502/503/504, connection errors and timeouts "
    "(exponential backoff with jitter; Retry-After honoured up to --deadline). "
    "404 and other 4xx are never retried.",
    lower_bound=0,
)


def fetch_config() -> net.FetchConfig:
    return net.FetchConfig(
        contact_url=_CONTACT_URL.value,
        allow_private_hosts=_ALLOW_PRIVATE.value,
        connect_timeout=_TIMEOUT.value,
        read_timeout=_TIMEOUT.value,
        deadline=_DEADLINE.value,
        retries=_RETRIES.value,
        per_host_concurrency=_PER_HOST_CONCURRENCY.value,
        per_host_delay=_PER_HOST_DELAY.value,
        pool_size=max(_WORKERS.value, 4),
    )


def main(argv):
    extra = argv[1:]
    quiet_libraries()  # short log lines; libraries' INFO lines only with -v 1 (cli/console.py)
    try:
        if extra and _RUNNER.value == "local":
            raise app.UsageError(f"unexpected arguments: {extra} (Beam pipeline options need a Beam --runner)")
        if _RUNNER.value != "local":
            fs.configure(extra)  # --s3_endpoint_url and friends reach the driver's reads and writes too
        fs.preflight(_OUT_DIR.value, "--out_dir", write=True)
        check_local_out_dir(_OUT_DIR.value)
        if _URLS_FILE.value:
            fs.preflight(fs.dirname(_URLS_FILE.value), "--urls_file")
        classes, source = inputs()
    except (app.UsageError, StorageError) as e:
        return fail(e, 2)
    working = False
    try:
        with lock.hold(_OUT_DIR.value, "crawl"):  # both phases, whatever the runner: one crawl at a time
            working = True
            return crawl(extra, classes, source)
    except app.UsageError as e:
        return fail(e, 2)
    except OSError as e:  # a StorageError, or a disk that failed: one line, no traceback
        return fail(e, 1 if working else 2)


def fail(error: Exception, code: int) -> int:
    """Prints `error` as one `error:` line on stderr; returns the exit code."""
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
    return code


def check_local_out_dir(path: str) -> None:
    """Refuses, before any work, a local --out_dir this process cannot write into (made if missing):
    a file, a folder under a file, a read-only disk or folder. fs.preflight proves the same of a bucket."""
    if not fs.is_local(path):
        return
    name = f"--out_dir={path}"
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".flowerpipe-write-check-{uuid.uuid4().hex[:12]}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except FileExistsError:
        raise StorageError(name, "not a folder (a file of that name exists)") from None
    except NotADirectoryError:
        raise StorageError(name, "a part of the path is a file, not a folder") from None
    except OSError as e:
        raise StorageError(name, e.strerror or str(e), "write") from None


def inputs() -> tuple:
    """The classes, and the source the flags name if the phase discovers (None otherwise), checked before
    any work: a bad value is a UsageError naming the flag (each source checks its own options)."""
    try:
        classes = parse_classes(_CLASSES.value)
        if _PHASE.value == "download":  # reads candidates.jsonl: no source
            return classes, None
        source = get_source(
            _SOURCE.value,
            SourceOptions(
                classes=tuple(c.slug for c in classes),
                url_template=_URL_TEMPLATE.value,
                start_url=_START_URL.value,
                urls_file=_URLS_FILE.value,
                max_pages=_MAX_PAGES.value,
                allowed_hosts=tuple(h.lower() for h in _ALLOWED_HOSTS.value),
            ),
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    return classes, source


def crawl(extra: list[str], classes, source) -> int:
    """Both phases, as --phase says, in the locked --out_dir."""
    store = Store(_OUT_DIR.value)
    try:
        store.load()  # refuses a folder from another class list before any request
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    fetcher = net.Fetcher(fetch_config())
    cand_path = store.path(CANDIDATES)
    if _PHASE.value in ("discover", "all"):
        try:
            candidates = discover(source, classes, fetcher)
        except RuntimeError as e:
            logging.error("%s", e)
            return fail(e, 1)
        with writing(cand_path):
            n = write_candidates(cand_path, candidates)
        logging.info("discover: %d candidates -> %s", n, cand_path)
    if _PHASE.value in ("download", "all"):
        if not fs.exists(cand_path):
            raise app.UsageError(f"{cand_path} not found: run --phase=discover first")
        try:
            wanted = {c.slug for c in classes}
            candidates = [c for c in read_candidates(cand_path) if c.klass in wanted]
        except ValueError as e:
            raise app.UsageError(str(e)) from e
        config = DownloadConfig(
            workers=_WORKERS.value,
            max_per_class=_MAX_PER_CLASS.value,
            max_total_bytes=_MAX_TOTAL_BYTES.value,
            max_image_bytes=_MAX_IMAGE_BYTES.value,
            dedup_distance=_DEDUP_DISTANCE.value,
            limits=Limits(min_side=_MIN_SIDE.value, max_pixels=_MAX_PIXELS.value),
        )
        if _RUNNER.value == "local":
            stats = download(candidates, store, fetcher, config)
        else:
            from crawler import distributed  # Beam is imported only when asked for

            stats = distributed.download_beam(
                candidates,
                store,
                fetcher,
                config,
                distributed.pipeline_args(_RUNNER.value, extra),
                _PARTITIONS.value,
                _PARTITION_BY.value,
            )
        print_summary(stats)
    return 0


def print_summary(stats: dict) -> None:
    run = stats["this_run"]
    lines = [
        f"crawl: {stats['accepted']} accepted, {stats['rejected']} rejected, {stats['bytes'] / 1e6:.1f} MB; "
        f"this run ({run.get('runner', 'local')}) {run['accepted']} accepted in {run['seconds']:.1f}s "
        f"({run['accepted_per_second']:.1f} img/s)",
        "  rejected per reason: " + json.dumps(stats["rejected_per_reason"]),
        "  accepted per class: " + json.dumps(stats["accepted_per_class"]),
        "  top hosts: " + json.dumps(stats["top_hosts"]),
    ]
    print("\n".join(lines), flush=True)


def _parse(argv):
    return cli.parse_flags(argv, known_only=True)  # the rest are Beam pipeline options


def run():
    app.run(main, flags_parser=_parse)


if __name__ == "__main__":
    run()
