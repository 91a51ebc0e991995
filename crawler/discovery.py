"""The discover phase: a source's candidates for every class, unique per class, in rank order.

Every candidate passes `candidates.screen` here, whatever its source: a URL with a user name
or password, or one the crawler cannot use, becomes a refused candidate (recorded as rejected
by the download phase, never fetched), and is logged without its user name or password.

Kept apart from `crawl.py` (which defines the program's flags) so it can be imported by
tests, benchmarks and other programs without defining flags.
"""

from __future__ import annotations

from absl import logging

from cli.console import track
from crawler import net
from crawler.candidates import BAD_URL, USERINFO, Candidate, screen

MAX_LOGGED_BAD_URLS = 20  # bad_url warnings per run; rejected.jsonl has them all


class _RefusalLog:
    """Warns once per host about URLs with a user name or password, and about the first bad URLs."""

    def __init__(self):
        self.userinfo_hosts: set[str] = set()
        self.bad_urls = 0

    def note(self, c: Candidate) -> None:
        if c.refused == USERINFO:
            host = net.host_key(c.url)
            if host not in self.userinfo_hosts:
                self.userinfo_hosts.add(host)
                logging.warning(
                    "discover: URLs with a user name or password on host %s are refused (%s): "
                    "the crawler neither sends nor keeps them",
                    host,
                    USERINFO,
                )
        elif c.refused == BAD_URL:
            self.bad_urls += 1
            if self.bad_urls <= MAX_LOGGED_BAD_URLS:
                logging.warning("discover %s: %s: %s", c.klass, BAD_URL, c.refused_detail)

    def summary(self) -> None:
        if self.bad_urls > MAX_LOGGED_BAD_URLS:
            logging.warning(
                "discover: %d more %s candidates not shown (see rejected.jsonl after the download)",
                self.bad_urls - MAX_LOGGED_BAD_URLS,
                BAD_URL,
            )


def discover(source, classes, fetcher: net.Fetcher) -> list[Candidate]:
    """Runs the source over every class; URLs are unique per class, in rank order (a refused candidate
    gives way to one of the same URL that is not refused)."""

    def fetch_text(url: str) -> str:
        page = fetcher.get(url, 5 * 1024**2)
        return page.body.decode("utf-8", errors="replace")

    out: list[Candidate] = []
    errors = []
    refusals = _RefusalLog()
    for klass in track(classes, "discover", len(classes), "classes"):
        at: dict[str, int] = {}  # url -> its index in `out`
        try:
            for c in source.discover(klass, fetch_text):
                c = screen(c)
                if c.url in at:
                    if out[at[c.url]].refused and not c.refused:
                        out[at[c.url]] = c
                    continue
                at[c.url] = len(out)
                out.append(c)
                refusals.note(c)
        except net.FetchError as e:
            errors.append(f"{klass.slug}: {e}")
            logging.warning("discover %s: %s", klass.slug, e)
        logging.vlog(1, "discover %s: %d candidates", klass.slug, len(at))
    refusals.summary()
    if not out and errors:
        raise RuntimeError(f"no candidates found; first error: {errors[0]}")
    return out
