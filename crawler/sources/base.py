"""The source interface and registry."""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Iterator

from crawler.candidates import Candidate
from crawler.classes import FlowerClass


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """What the crawl flags tell sources; each source reads the fields it needs."""

    url_template: str = ""
    start_url: str = ""
    urls_file: str = ""
    max_pages: int = 10
    allowed_hosts: tuple[str, ...] = ()


FetchText = Callable[[str], str]  # GET a page through the polite fetcher, return its text


class Source(abc.ABC):
    name: str = ""

    def __init__(self, options: SourceOptions):
        self.options = options

    @abc.abstractmethod
    def discover(self, klass: FlowerClass, fetch_text: FetchText) -> Iterator[Candidate]:
        """Yields candidates for `klass` in rank order; may stop early when the caller stops."""


_REGISTRY: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    if not cls.name:
        raise ValueError(f"source class {cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"source {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def source_names() -> list[str]:
    return sorted(_REGISTRY)


def get_source(name: str, options: SourceOptions) -> Source:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown source {name!r}; known sources: {', '.join(source_names())}")
    return _REGISTRY[name](options)
