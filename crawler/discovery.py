"""The discover phase: a source's candidates for every class, unique per class, in rank order.

Kept apart from `crawl.py` (which defines the program's flags) so it can be imported by
tests, benchmarks and other programs without defining flags.
"""

from __future__ import annotations

from absl import logging

from crawler import net
from crawler.candidates import Candidate


def discover(source, classes, fetcher: net.Fetcher) -> list[Candidate]:
    """Runs the source over every class; URLs are unique per class, in rank order."""

    def fetch_text(url: str) -> str:
        page = fetcher.get(url, 5 * 1024**2)
        return page.body.decode("utf-8", errors="replace")

    out: list[Candidate] = []
    errors = []
    for klass in classes:
        seen: set[str] = set()
        try:
            for c in source.discover(klass, fetch_text):
                if c.url not in seen:
                    seen.add(c.url)
                    out.append(c)
        except net.FetchError as e:
            errors.append(f"{klass.slug}: {e}")
            logging.warning("discover %s: %s", klass.slug, e)
        logging.info("discover %s: %d candidates", klass.slug, len(seen))
    if not out and errors:
        raise RuntimeError(f"no candidates found; first error: {errors[0]}")
    return out
