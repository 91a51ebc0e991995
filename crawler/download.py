"""The download phase: candidates -> validated, de-duplicated images in a `Store`.

Fetching, validation and hashing run on a thread pool (`workers`); results are committed
by one thread in candidate order, so which of two duplicates wins, and when a class is full,
never depends on thread timing: a resumed run ends with the same manifest as an
uninterrupted one.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import sys
import time
import urllib.parse
from typing import Iterable

from absl import logging
from tqdm import tqdm

from crawler import dedup, net, validate
from crawler.candidates import Candidate
from crawler.store import Store


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    workers: int = 16
    max_per_class: int = 1000
    max_total_bytes: int = 10 * 1024**3
    max_image_bytes: int = 20 * 1024**2
    dedup_distance: int = dedup.DEFAULT_HAMMING
    limits: validate.Limits = validate.Limits()


@dataclasses.dataclass(frozen=True)
class _Outcome:
    candidate: Candidate
    image: validate.ValidImage | None = None
    phash: str = ""
    error: str = ""  # reason label
    detail: str = ""
    retryable: bool = False


def _fetch_one(fetcher: net.Fetcher, c: Candidate, config: DownloadConfig) -> _Outcome:
    try:
        fetched = fetcher.get(c.url, config.max_image_bytes)
        img = validate.validate_image(fetched.body, config.limits)
        return _Outcome(c, img, dedup.perceptual_hash(img.image))
    except net.FetchError as e:
        return _Outcome(c, error=e.reason, detail=e.detail, retryable=e.retryable)
    except validate.Rejected as e:
        return _Outcome(c, error=e.reason, detail=e.detail)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def download(candidates: Iterable[Candidate], store: Store, fetcher: net.Fetcher,
             config: DownloadConfig = DownloadConfig()) -> dict:
    """Runs the download phase; returns (and writes) crawl statistics."""
    state = store.load()
    index = dedup.DedupIndex(config.dedup_distance)
    for r in state.accepted:
        index.add(r["sha256"], r["phash"], r["key"], r["class"])
    per_class = state.per_class()
    done = state.done_urls
    total_bytes = sum(r["bytes"] for r in state.accepted)
    todo = [c for c in candidates if c.url not in done]
    seen_urls: set[str] = set()
    todo = [c for c in todo if not (c.url in seen_urls or seen_urls.add(c.url))]
    logging.info("download: %d candidates to try (%d already decided, %d accepted so far)",
                 len(todo), len(done), len(state.accepted))

    run = collections.Counter()
    start = time.monotonic()
    store.open()
    bar = tqdm(total=len(todo), desc="download", unit="img", disable=not sys.stderr.isatty())
    last_log = start
    try:
        with cf.ThreadPoolExecutor(config.workers, thread_name_prefix="download") as pool:
            window: collections.deque[cf.Future] = collections.deque()
            it = iter(todo)

            def refill():
                while len(window) < config.workers * 4:
                    c = next(it, None)
                    if c is None:
                        return
                    if per_class[c.klass] >= config.max_per_class:
                        run["skipped_class_full"] += 1
                        bar.update(1)
                        continue
                    window.append(pool.submit(_fetch_one, fetcher, c, config))

            refill()
            while window:
                out = window.popleft().result()
                refill()
                bar.update(1)
                _commit(out, store, index, per_class, config, run)
                if total_bytes + run["bytes"] >= config.max_total_bytes:
                    logging.warning("--max_total_bytes reached; stopping the download")
                    for f in window:
                        f.cancel()
                    break
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    logging.info("download: %d accepted, %d rejected so far", run["accepted"], run["rejected"])
    finally:
        bar.close()
        store.close()
    elapsed = time.monotonic() - start
    return finish_stats(store, run, elapsed, fetcher)


def _commit(out: _Outcome, store: Store, index: dedup.DedupIndex, per_class: collections.Counter,
            config: DownloadConfig, run: collections.Counter) -> None:
    c = out.candidate
    base = {"url": c.url, "class": c.klass, "page_url": c.page_url, "source": c.source, "time": _now()}
    if per_class[c.klass] >= config.max_per_class:
        run["skipped_class_full"] += 1
        return
    reason, detail, retryable = out.error, out.detail, out.retryable
    img = out.image
    if img is not None:
        match = index.find(img.sha256, out.phash)
        if match is not None:
            reason = match.kind if match.klass == c.klass else f"{match.kind}_other_class"
            detail = f"of {match.key} (hamming {match.distance})"
    if reason:
        store.reject({**base, "reason": reason, "detail": detail, "retryable": retryable})
        run["rejected"] += 1
        return
    key = f"{c.klass}/{img.sha256}"
    record = {**base, "key": key, "sha256": img.sha256, "width": img.width, "height": img.height,
              "bytes": len(img.data), "format": img.format, "source_format": img.source_format,
              "phash": out.phash, "query": c.query, "thumbnail_url": c.thumbnail_url, **c.extra}
    store.accept(record, img.data, img.ext)
    index.add(img.sha256, out.phash, key, c.klass)
    per_class[c.klass] += 1
    run["accepted"] += 1
    run["bytes"] += len(img.data)


def finish_stats(store: Store, run: collections.Counter, elapsed: float, fetcher: net.Fetcher) -> dict:
    """Statistics over the whole output folder (earlier runs included) plus this run's speed."""
    state = store.load()
    hosts = collections.Counter(urllib.parse.urlsplit(r["url"]).netloc for r in state.accepted)
    stats = {
        "accepted": len(state.accepted),
        "rejected": len(state.rejected),
        "accepted_per_class": dict(sorted(state.per_class().items())),
        "rejected_per_class": dict(sorted(collections.Counter(r["class"] for r in state.rejected).items())),
        "rejected_per_reason": dict(sorted(collections.Counter(r["reason"] for r in state.rejected).items())),
        "bytes": sum(r["bytes"] for r in state.accepted),
        "top_hosts": dict(hosts.most_common(10)),
        "requests_per_host": dict(fetcher.requests_per_host),
        "this_run": {"accepted": run["accepted"], "rejected": run["rejected"],
                     "skipped_class_full": run["skipped_class_full"], "seconds": round(elapsed, 3),
                     "accepted_per_second": round(run["accepted"] / elapsed, 2) if elapsed > 0 else 0.0},
    }
    store.write_stats(stats)
    return stats
