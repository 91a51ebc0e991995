"""The download phase: candidates -> validated, de-duplicated images in a `Store`.

Fetching, validation and hashing run on a thread pool (`workers`); results are committed
by one thread in candidate order, so which of two duplicates wins, and when a class is full,
never depends on thread timing: a resumed run ends with the same manifest as an
uninterrupted one.

De-duplication is exact (sha256) and near (perceptual hash within `dedup_distance` bits),
within and across classes. Within a class the first copy wins. Across classes nobody wins:
the later copy is rejected (`duplicate_other_class` / `near_duplicate_other_class`) and the
earlier, already accepted one is retracted (`cross_class_duplicate`, naming the other URL);
both stay in the index, so later copies in either class are rejected too. A URL listed
under two classes is fetched once and decided for each class.
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
    for r in state.accepted + state.retracted:
        index.add(r["sha256"], r["phash"], r["key"], r["class"], r["url"])
    per_class = state.per_class()
    done = state.done
    total_bytes = sum(r["bytes"] for r in state.accepted)
    seen: set[tuple[str, str]] = set()
    todo = [c for c in candidates if (c.url, c.klass) not in done
            and not ((c.url, c.klass) in seen or seen.add((c.url, c.klass)))]
    store.forget_retryable({(c.url, c.klass) for c in todo})
    logging.info("download: %d candidates to try (%d already decided, %d accepted so far)",
                 len(todo), len(done), len(state.accepted))

    run = collections.Counter()
    start = time.monotonic()
    store.open()
    bar = tqdm(total=len(todo), desc="download", unit="img", disable=not sys.stderr.isatty())
    last_log = start
    try:
        with cf.ThreadPoolExecutor(config.workers, thread_name_prefix="download") as pool:
            window: collections.deque[tuple[Candidate, cf.Future | None]] = collections.deque()
            by_url: dict[str, cf.Future] = {}  # one fetch per URL for the classes in the window
            waiting = collections.Counter()  # window entries per URL, to forget fetched images in time
            it = iter(todo)

            def refill():
                while len(window) < config.workers * 4:
                    c = next(it, None)
                    if c is None:
                        return
                    if per_class[c.klass] >= config.max_per_class:
                        window.append((c, None))  # decided at commit time: a retraction may free a slot
                        continue
                    if c.url not in by_url:
                        by_url[c.url] = pool.submit(_fetch_one, fetcher, c, config)
                    waiting[c.url] += 1
                    window.append((c, by_url[c.url]))

            refill()
            while window:
                c, future = window.popleft()
                if future is None:
                    if per_class[c.klass] < config.max_per_class:
                        future = by_url.get(c.url) or pool.submit(_fetch_one, fetcher, c, config)
                else:
                    waiting[c.url] -= 1
                    if not waiting[c.url]:
                        del waiting[c.url], by_url[c.url]
                out = dataclasses.replace(future.result(), candidate=c) if future is not None else None
                refill()
                bar.update(1)
                if out is None:
                    run["skipped_class_full"] += 1
                else:
                    _commit(out, store, index, per_class, config, run)
                if total_bytes + run["bytes"] >= config.max_total_bytes:
                    logging.warning("--max_total_bytes reached; stopping the download")
                    for _, f in window:
                        if f is not None:
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
            detail = f"of {match.key} ({match.url}, hamming {match.distance})"
            if match.klass != c.klass:
                _retract(match, c, store, per_class, run)
    if reason:
        store.reject({**base, "reason": reason, "detail": detail, "retryable": retryable})
        run["rejected"] += 1
        return
    key = f"{c.klass}/{img.sha256}"
    record = {**base, "key": key, "sha256": img.sha256, "width": img.width, "height": img.height,
              "bytes": len(img.data), "format": img.format, "source_format": img.source_format,
              "phash": out.phash, "query": c.query, "thumbnail_url": c.thumbnail_url, **c.extra}
    store.accept(record, img.data, img.ext)
    index.add(img.sha256, out.phash, key, c.klass, c.url)
    per_class[c.klass] += 1
    run["accepted"] += 1
    run["bytes"] += len(img.data)


def _retract(match: dedup.Match, c: Candidate, store: Store, per_class: collections.Counter,
             run: collections.Counter) -> None:
    """Takes back the accepted image `match` names, now that a copy turned up in class `c.klass`."""
    line = store.retract(match.key, {
        "detail": f"{match.kind} of {c.url} in class {c.klass} (hamming {match.distance})",
        "other_url": c.url, "other_class": c.klass, "time": _now()})
    if line is None:
        return  # taken back already, by an earlier copy
    logging.warning("%s is in classes %s and %s: rejected from both (%s, %s)", match.kind, match.klass, c.klass,
                    match.url, c.url)
    per_class[match.klass] -= 1
    run["retracted"] += 1
    run["bytes"] -= line["bytes"]


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
        "rejected_retryable": sum(1 for r in state.rejected if r.get("retryable")),
        "bytes": sum(r["bytes"] for r in state.accepted),
        "top_hosts": dict(hosts.most_common(10)),
        "requests_per_host": dict(fetcher.requests_per_host),
        "cross_class_duplicates": [{"key": r["key"], "url": r["url"], "class": r["class"],
                                    "other_url": r.get("other_url", ""), "other_class": r.get("other_class", "")}
                                   for r in state.retracted],
        "this_run": {"accepted": run["accepted"], "rejected": run["rejected"], "retracted": run["retracted"],
                     "skipped_class_full": run["skipped_class_full"], "seconds": round(elapsed, 3),
                     "accepted_per_second": round(run["accepted"] / elapsed, 2) if elapsed > 0 else 0.0},
    }
    store.write_stats(stats)
    return stats
