"""Benchmark: the crawler's download phase vs a plain sequential `requests` loop doing the same checks.

    python -m bench.bench_crawl [--classes=all] [--per_class=110] [--repeats=3] [--workers=32] \
        [--site=process] [--latency_ms=0] [--beam]

Against the local flower site on 127.0.0.1 (`--site=process`: `python -m crawler.flowersite
--prerender` in its own process, so it does not share this process's GIL; `--site=inline`: in
this process, on threads), every image rendered before the clock starts. Loopback has no
network latency; `--latency_ms` makes the site wait before each response like a remote server
(the wait a crawler's concurrency exists to overlap). Discover runs once;
then, each into a fresh output folder, median of --repeats runs:
  local       crawler.download.download: the thread pool (--workers), polite Fetcher
              (robots.txt, per-host gate with --per_host_delay=0), validation, sha256,
              perceptual hash, ordered commit with de-duplication, staged and stored images;
  sequential  one `requests.Session`, one URL after another: status check, the same
              validate.validate_image (magic bytes, full decode, size checks, sha256) and
              dedup.perceptual_hash, the same de-duplication index, and the image written with
              the same storage.fs.write_bytes;
  beam        (--beam) crawler.distributed.download_beam on the multi-process DirectRunner (all
              cores), partitioned by URL: job start-up included.
Rates are accepted images per second of wall time; the numbers and the exact command are
appended to bench/RESULTS.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import requests
from absl import app, flags

from bench import results
from crawler import dedup, discovery, net, validate
from crawler.candidates import Candidate
from crawler.classes import parse_classes
from crawler.download import DownloadConfig, download
from crawler.sources import SourceOptions, get_source
from crawler.store import Store
from storage import fs

_CLASSES = flags.DEFINE_string("classes", "all", "Classes of the site to crawl.")
_PER_CLASS = flags.DEFINE_integer("per_class", 110, "Images per class on the site (20 x 110 = 2,200).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs of each variant; medians are reported.")
_WORKERS = flags.DEFINE_integer("workers", 32, "Download threads of the crawler.")
_LATENCY = flags.DEFINE_float(
    "latency_ms",
    0.0,
    "The site waits this long before each response's first byte, "
    "like a server across a real network (0: bare loopback).",
    lower_bound=0.0,
)
_SITE = flags.DEFINE_enum("site", "process", ["process", "inline"], "Where the flower site runs.")
_BEAM = flags.DEFINE_bool("beam", True, "Also time the Beam DirectRunner path.")
_RESULTS = flags.DEFINE_string("results", results.PATH, "Results file.")
_SECTION = "## bench_crawl: download phase vs a sequential requests loop"
_TARGET_RATE, _TARGET_RATIO = 300, 5


def start_site(per_class: int):
    """(site URL, stop function), the site prerendered."""
    if _SITE.value == "inline":
        from crawler.flowersite import FlowerSite

        site = FlowerSite(per_class=per_class, latency_ms=_LATENCY.value)
        site.prerender()
        site.start()
        return site.url, site.stop
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crawler.flowersite",
            "--port=0",
            f"--per_class={per_class}",
            f"--latency_ms={_LATENCY.value}",
            "--prerender",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("Flower site at "):
        proc.kill()
        raise RuntimeError(f"the flower site did not start: {line!r}")

    def stop():
        proc.terminate()
        proc.wait(10)

    return line.split()[3], stop


def discover(url: str, classes: str) -> list[Candidate]:
    """The html source over the site's search pages (the crawler's own discover phase)."""
    source = get_source("html", SourceOptions(url_template=url + "/search?q={query}", max_pages=1000))
    return discovery.discover(source, parse_classes(classes), net.Fetcher(fetch_config()))


def fetch_config() -> net.FetchConfig:
    return net.FetchConfig(
        allow_private_hosts=True,
        per_host_delay=0.0,
        per_host_concurrency=max(_WORKERS.value, 4),
        pool_size=max(_WORKERS.value, 4),
    )


def run_local(candidates: list[Candidate], out: str) -> tuple[float, int]:
    start = time.perf_counter()
    stats = download(candidates, Store(out), net.Fetcher(fetch_config()), DownloadConfig(workers=_WORKERS.value))
    return time.perf_counter() - start, stats["this_run"]["accepted"]


def run_beam(candidates: list[Candidate], out: str) -> tuple[float, int]:
    from crawler import distributed

    start = time.perf_counter()
    stats = distributed.download_beam(
        candidates,
        Store(out),
        net.Fetcher(fetch_config()),
        DownloadConfig(workers=_WORKERS.value // 2),
        distributed.pipeline_args("DirectRunner", []),
        partitions=8,
        partition_by="url",
    )
    return time.perf_counter() - start, stats["this_run"]["accepted"]


def run_sequential(candidates: list[Candidate], out: str) -> tuple[float, int]:
    """The plain loop: the same checks, hashing, de-duplication and writes; no threads, no politeness."""
    start = time.perf_counter()
    session = requests.Session()
    index = dedup.DedupIndex()
    accepted = 0
    for c in candidates:
        try:
            resp = session.get(c.url, timeout=10)
        except requests.RequestException:
            continue
        if resp.status_code != 200:
            continue
        try:
            img = validate.validate_image(resp.content)
        except validate.Rejected:
            continue
        phash = dedup.perceptual_hash(img.image)
        if index.find(img.sha256, phash) is not None:
            continue
        fs.write_bytes(os.path.join(out, c.klass, f"{img.sha256}.{img.ext}"), img.data)
        index.add(img.sha256, phash, f"{c.klass}/{img.sha256}", c.klass, c.url)
        accepted += 1
    return time.perf_counter() - start, accepted


def main(argv):
    del argv
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    url, stop = start_site(_PER_CLASS.value)
    print(f"site ({_SITE.value}) ready at {url} in {time.perf_counter() - t:.0f}s", flush=True)
    try:
        candidates = discover(url, _CLASSES.value)
        print(f"discover: {len(candidates)} candidates", flush=True)
        variants = {"local": run_local, "sequential": run_sequential}
        if _BEAM.value:
            variants["beam"] = run_beam
        times: dict[str, list[float]] = {k: [] for k in variants}
        accepted: dict[str, set[int]] = {k: set() for k in variants}
        for r in range(_REPEATS.value):
            for name, fn in variants.items():
                out = tempfile.mkdtemp(prefix=f"bench_crawl_{name}_")
                try:
                    wall, n = fn(candidates, out)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                times[name].append(wall)
                accepted[name].add(n)
                print(f"run {r + 1} {name}: {n} accepted in {wall:.2f}s = {n / wall:.0f} img/s", flush=True)
    finally:
        stop()
    report(candidates, times, accepted, load_before)


def report(candidates, times, accepted, load_before) -> None:
    n = {k: max(v) for k, v in accepted.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n[k] / med[k] for k in med}
    ratio = rate["local"] / rate["sequential"]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench.bench_crawl " + " ".join(
        f"--{f}={flags.FLAGS[f].value}"
        if not isinstance(flags.FLAGS[f].value, bool)
        else (f"--{f}" if flags.FLAGS[f].value else f"--no{f}")
        for f in ("classes", "per_class", "repeats", "workers", "site", "latency_ms", "beam")
    )
    names = {
        "local": f"local thread pool (--workers={_WORKERS.value})",
        "sequential": "sequential requests loop",
        "beam": f"Beam DirectRunner, multi_processing on all cores, 8 partitions by URL, "
        f"{_WORKERS.value // 2} threads each (start-up included)",
    }
    lines = [
        f"### {when}, {len(candidates)} candidates, {_REPEATS.value} runs (medians)",
        "",
        f"`{command}` on {os.cpu_count()} cores, Python {platform.python_version()}, site in "
        f"{'its own process' if _SITE.value == 'process' else 'the benchmark process (threads)'}, "
        f"prerendered, {f'{_LATENCY.value:g} ms before each response' if _LATENCY.value else 'no added latency'}; "
        f"load average before: {load_before:.1f}",
        "",
        "| variant | accepted | seconds (median) | accepted images/s | all runs (s) |",
        "|---|---|---|---|---|",
    ]
    for k in med:
        lines.append(
            f"| {names[k]} | {n[k]} | {med[k]:.2f} | {rate[k]:.0f} | {', '.join(f'{x:.2f}' for x in times[k])} |"
        )
    lines += [
        "",
        f"- local vs sequential: **{ratio:.1f}x** (target >= {_TARGET_RATIO}x: "
        f"{'met' if ratio >= _TARGET_RATIO else 'MISSED'}); local rate **{rate['local']:.0f} img/s** "
        f"(target >= {_TARGET_RATE}: {'met' if rate['local'] >= _TARGET_RATE else 'MISSED'})",
    ]
    if "beam" in rate:
        lines.append(f"- beam vs local: {rate['beam'] / rate['local']:.2f}x")
    if len({x for v in accepted.values() for x in v}) > 1:
        counts = json.dumps({k: sorted(v) for k, v in accepted.items()})
        lines.append(
            f"- accepted counts differ between variants: {counts} (the sequential loop has no robots.txt "
            "and no cross-class retraction)"
        )
    text = "\n".join(lines) + "\n"
    results.record(_SECTION, text, _RESULTS.value)


if __name__ == "__main__":
    app.run(main)
