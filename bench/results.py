"""bench/RESULTS.md: one '## ' section per benchmark, each run appended at the end of its section."""

from __future__ import annotations

import os

PATH = os.path.join(os.path.dirname(__file__), "RESULTS.md")
_HEADER = "# Benchmarks\n\nOne section per benchmark; newest runs appended at the end of their section.\n"


def insert_in_section(doc: str, section: str, text: str) -> str:
    """`doc` with `text` appended at the end of `section` (created at the end if missing)."""
    if section not in doc:
        doc = doc.rstrip("\n") + f"\n\n{section}\n"
    start = doc.index(section)
    nxt = doc.find("\n## ", start + len(section))
    end = len(doc) if nxt < 0 else nxt + 1
    body = doc[start:end].rstrip("\n") + "\n\n" + text.strip("\n") + "\n"
    return doc[:start] + body + ("\n" + doc[end:] if end < len(doc) else "")


def record(section: str, text: str, path: str = PATH) -> None:
    """Prints one run's `text` and appends it to `section` of the results file."""
    print(text, flush=True)
    doc = _HEADER
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            doc = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(insert_in_section(doc, section, text))
