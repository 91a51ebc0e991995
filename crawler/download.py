"""The download phase: candidates -> validated, de-duplicated images in a `Store`.

Fetching, validation and hashing (`fetch_and_stage`) run on a thread pool (`workers`), or on
Beam workers (crawler.distributed); valid images are staged under their sha256, and the
`Committer` decides every candidate in one thread, in candidate order, moving accepted images
into place. Which of two duplicates wins, and when a class is full, never depends on thread or
worker timing: a resumed run, and a Beam run, end with the same manifest as an uninterrupted
local one.

De-duplication is exact (sha256) and near (perceptual hash within `dedup_distance` bits),
within and across classes. Within a class the first copy wins. Across classes nobody wins:
the later copy is rejected (`duplicate_other_class` / `near_duplicate_other_class`) and the
earlier, already accepted one is retracted (`cross_class_duplicate`, naming the other URL);
both stay in the index, so later copies in either class are rejected too. A URL listed
under two classes is fetched once and decided for each class. A candidate refused at intake
(`Candidate.refused`: a URL with a user name or password, or one the crawler cannot use) is
never fetched: it is rejected with its reason, for good.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import functools
import sys
import time
import urllib.parse
from collections.abc import Iterable

from absl import logging
from tqdm import tqdm

from crawler import dedup, net, validate
from crawler.candidates import Candidate
from crawler.manifest import ManifestRecord
from crawler.store import Store
from imaging import Limits, Rejected


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    workers: int = 16
    max_per_class: int = 1000
    max_total_bytes: int = 10 * 1024**3
    max_image_bytes: int = 20 * 1024**2
    dedup_distance: int = dedup.DEFAULT_HAMMING
    limits: Limits = Limits()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one URL gave: a validated image (staged under its sha256) or a failure with its reason.

    Small and JSON-able: the Beam runner's workers write it to their part files.
    """

    url: str
    sha256: str = ""
    phash: str = ""
    width: int = 0
    height: int = 0
    bytes: int = 0
    format: str = ""  # of the stored bytes: 'jpeg' or 'png'
    source_format: str = ""
    error: str = ""  # reason label
    detail: str = ""
    retryable: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Outcome:
        return cls(**d)


# A manifest record's fields taken from the candidate and from its URL's outcome.
_FROM_CANDIDATE = ("url", "klass", "page_url", "source", "query", "thumbnail_url", "extra")
_FROM_OUTCOME = ("sha256", "width", "height", "bytes", "format", "source_format", "phash")


def fetch_and_stage(fetcher: net.Fetcher, url: str, config: DownloadConfig, store: Store) -> Outcome:
    """Fetches, validates and hashes one URL; a valid image is written to the store's staging area.

    Runs on any worker thread or process: it touches no shared state but the fetcher (thread-safe)
    and content-addressed staging files.
    """
    try:
        fetched = fetcher.get(url, config.max_image_bytes)
        img = validate.validate_image(fetched.body, config.limits)
        phash = dedup.perceptual_hash(img.image)
    except net.FetchError as e:
        return Outcome(url, error=e.reason, detail=e.detail, retryable=e.retryable)
    except Rejected as e:
        return Outcome(url, error=e.reason, detail=e.detail)
    store.stage(img.data, img.sha256, img.ext)
    return Outcome(url, img.sha256, phash, img.width, img.height, len(img.data), img.format, img.source_format)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Committer:
    """Every decision of the download phase, made in one thread in candidate order.

    Both runners (local threads, Beam workers) only fetch, validate, hash and stage; they hand
    their outcomes to `commit` in candidate order, so de-duplication, retractions, class caps
    and the byte cap give the same manifest whoever fetched what, and whenever.
    """

    def __init__(self, store: Store, config: DownloadConfig):
        self.store, self.config = store, config
        state = store.load(config.max_per_class)
        self.index = dedup.DedupIndex(config.dedup_distance)
        for r in state.accepted + [ManifestRecord.from_json(line) for line in state.retracted]:
            self.index.add(r.sha256, r.phash, r.key, r.klass, r.url)
        self.per_class = state.per_class()
        self.done = state.done
        self.accepted_before = len(state.accepted)
        self.bytes_before = sum(r.bytes for r in state.accepted)
        self.run = collections.Counter()

    def plan(self, candidates: Iterable[Candidate]) -> list[Candidate]:
        """The candidates left to decide, each (url, class) once; forgets their retryable rejections."""
        seen: set[tuple[str, str]] = set()
        todo = [
            c
            for c in candidates
            if (c.url, c.klass) not in self.done and not ((c.url, c.klass) in seen or seen.add((c.url, c.klass)))
        ]
        self.store.forget_retryable({(c.url, c.klass) for c in todo})
        logging.info(
            "download: %d candidates to try (%d already decided, %d accepted so far)",
            len(todo),
            len(self.done),
            self.accepted_before,
        )
        return todo

    def has_room(self, klass: str) -> bool:
        return self.per_class[klass] < self.config.max_per_class

    @property
    def out_of_bytes(self) -> bool:
        return self.bytes_before + self.run["bytes"] >= self.config.max_total_bytes

    @staticmethod
    def wants_fetch(c: Candidate) -> bool:
        """False for a candidate refused at intake: decided without a request."""
        return not c.refused

    def commit(self, c: Candidate, out: Outcome | None) -> None:
        """Decides candidate `c` from its URL's outcome (None: not fetched, its class was full, or refused)."""
        base = {"url": c.url, "class": c.klass, "page_url": c.page_url, "source": c.source, "time": _now()}
        if c.refused:
            self.store.reject({**base, "reason": c.refused, "detail": c.refused_detail, "retryable": False})
            self.run["rejected"] += 1
            return
        if out is None or not self.has_room(c.klass):
            self.run["skipped_class_full"] += 1
            return
        reason, detail, retryable = out.error, out.detail, out.retryable
        if not reason:
            match = self.index.find(out.sha256, out.phash)
            if match is not None:
                reason = match.kind if match.klass == c.klass else f"{match.kind}_other_class"
                detail = f"of {match.key} ({match.url}, hamming {match.distance})"
                if match.klass != c.klass:
                    self._retract(match, c)
        if reason:
            self.store.reject({**base, "reason": reason, "detail": detail, "retryable": retryable})
            self.run["rejected"] += 1
            return
        record = ManifestRecord(
            **{name: getattr(c, name) for name in _FROM_CANDIDATE},
            **{name: getattr(out, name) for name in _FROM_OUTCOME},
            time=base["time"],
            key=f"{c.klass}/{out.sha256}",
        )
        self.store.accept_staged(record)
        self.index.add(out.sha256, out.phash, record.key, c.klass, c.url)
        self.per_class[c.klass] += 1
        self.run["accepted"] += 1
        self.run["bytes"] += out.bytes

    def _retract(self, match: dedup.Match, c: Candidate) -> None:
        """Takes back the accepted image `match` names, now that a copy turned up in class `c.klass`."""
        line = self.store.retract(
            match.key,
            {
                "detail": f"{match.kind} of {c.url} in class {c.klass} (hamming {match.distance})",
                "other_url": c.url,
                "other_class": c.klass,
                "time": _now(),
            },
        )
        if line is None:
            return  # taken back already, by an earlier copy
        # The closing summary counts these per reason (rejected.jsonl names both URLs); -v 1 shows each.
        logging.vlog(
            1,
            "%s is in classes %s and %s: rejected from both (%s, %s)",
            match.kind,
            match.klass,
            c.klass,
            match.url,
            c.url,
        )
        self.per_class[match.klass] -= 1
        self.run["retracted"] += 1
        self.run["bytes"] -= line["bytes"]


def download(
    candidates: Iterable[Candidate], store: Store, fetcher: net.Fetcher, config: DownloadConfig = DownloadConfig()
) -> dict:
    """Runs the download phase on a local thread pool; returns (and writes) crawl statistics."""
    committer = Committer(store, config)
    todo = committer.plan(candidates)
    store.clear_work()
    fetch = functools.partial(fetch_and_stage, fetcher, config=config, store=store)
    start = time.monotonic()
    store.open()
    bar = tqdm(total=len(todo), desc="download", unit="img", disable=not sys.stderr.isatty())
    last_log = start
    try:
        with cf.ThreadPoolExecutor(config.workers, thread_name_prefix="download") as pool:
            window: collections.deque[tuple[Candidate, cf.Future | None]] = collections.deque()
            by_url: dict[str, cf.Future] = {}  # one fetch per URL for the classes in the window
            waiting = collections.Counter()  # window entries per URL, to forget finished fetches in time
            it = iter(todo)

            def refill():
                while len(window) < config.workers * 4:
                    c = next(it, None)
                    if c is None:
                        return
                    if not committer.wants_fetch(c) or not committer.has_room(c.klass):
                        window.append((c, None))  # decided at commit time: a retraction may free a slot
                        continue
                    if c.url not in by_url:
                        by_url[c.url] = pool.submit(fetch, c.url)
                    waiting[c.url] += 1
                    window.append((c, by_url[c.url]))

            def cancel_window():
                for _, f in window:
                    if f is not None:
                        f.cancel()

            refill()
            while window:
                c, future = window.popleft()
                if future is None:
                    if committer.wants_fetch(c) and committer.has_room(c.klass):
                        future = by_url.get(c.url) or pool.submit(fetch, c.url)
                else:
                    waiting[c.url] -= 1
                    if not waiting[c.url]:
                        del waiting[c.url], by_url[c.url]
                try:
                    out = future.result() if future is not None else None
                    refill()
                    bar.update(1)
                    committer.commit(c, out)
                except BaseException:  # a full disk, ^C: the pool finishes only what it started
                    cancel_window()
                    raise
                if committer.out_of_bytes:
                    logging.warning("--max_total_bytes reached; stopping the download")
                    cancel_window()
                    break
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    logging.info(
                        "download: %d accepted, %d rejected so far",
                        committer.run["accepted"],
                        committer.run["rejected"],
                    )
    finally:
        bar.close()
        try:
            store.close()
        finally:
            store.clear_work()
    elapsed = time.monotonic() - start
    return finish_stats(store, committer.run, elapsed, fetcher.requests_per_host)


def finish_stats(
    store: Store,
    run: collections.Counter,
    elapsed: float,
    requests_per_host: dict[str, int],
    runner: dict | None = None,
) -> dict:
    """Statistics over the whole output folder (earlier runs included) plus this run's speed.

    Args:
      store: the output folder.
      run: this run's counters (Committer.run).
      elapsed: this run's seconds.
      requests_per_host: requests (attempts) per origin in this run, all workers together.
      runner: how this run was executed (`{"runner": "local"}` unless given).
    """
    state = store.load()
    hosts = collections.Counter(urllib.parse.urlsplit(r.url).netloc for r in state.accepted)
    stats = {
        "accepted": len(state.accepted),
        "rejected": len(state.rejected),
        "accepted_per_class": dict(sorted(state.per_class().items())),
        "rejected_per_class": dict(sorted(collections.Counter(r["class"] for r in state.rejected).items())),
        "rejected_per_reason": dict(sorted(collections.Counter(r["reason"] for r in state.rejected).items())),
        "rejected_retryable": sum(1 for r in state.rejected if r.get("retryable")),
        "bytes": sum(r.bytes for r in state.accepted),
        "top_hosts": dict(hosts.most_common(10)),
        "requests_per_host": dict(sorted(requests_per_host.items())),
        "cross_class_duplicates": [
            {
                "key": r["key"],
                "url": r["url"],
                "class": r["class"],
                "other_url": r.get("other_url", ""),
                "other_class": r.get("other_class", ""),
            }
            for r in state.retracted
        ],
        "this_run": {
            "accepted": run["accepted"],
            "rejected": run["rejected"],
            "retracted": run["retracted"],
            "skipped_class_full": run["skipped_class_full"],
            "seconds": round(elapsed, 3),
            "accepted_per_second": round(run["accepted"] / elapsed, 2) if elapsed > 0 else 0.0,
            **(runner or {"runner": "local"}),
        },
    }
    store.write_stats(stats)
    return stats
