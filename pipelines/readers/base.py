"""The record every reader produces, the reader interface and its registry.

A reader is one kind of input (a crawl, an image folder, a TFDS dataset): a `Reader` subclass
in a module of this package, decorated with `@register`. It says which flag names its input
(`input_flag`) and which other options only it reads (`option_flags`), whether a given input is
its own (`accepts`; readers of one flag are asked in `rank` order), checks its options
(`check`) and reads the input into an `Input`: records, label names, the inputs it rejected
itself, and optionally a worker-side loader. `load` then applies the checks every input gets.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Protocol

from pipelines import schema
from storage import fs


@dataclasses.dataclass(frozen=True)
class Record:
    key: str  # unique and deterministic
    path: str  # where the bytes are (read lazily, inside the pipeline); descriptive only when `data` is set
    label: str  # class name
    source: str = ""  # provenance (URL for crawled images)
    split: str = ""  # the input's own split, if it has one
    data: bytes | None = None  # the encoded image, for readers that load bytes themselves (TFDS, on workers)
    sha256: str = ""  # of the file, when the reader knows it (the crawler's manifest)
    phash: str = ""  # perceptual hash (crawler.dedup.perceptual_hash), when the reader knows it


@dataclasses.dataclass(frozen=True)
class ReaderOptions:
    """What the job's flags tell readers; each reader reads the fields it names (flag = field name)."""

    input_dir: str = ""
    tfds_name: str = ""
    tfds_data_dir: str = ""


class Loader(Protocol):
    """A worker-side read step, for readers whose records carry no path the decode step can read."""

    def tasks(self, records: list[Record]) -> list: ...  # picklable read tasks covering `records`

    def read(self, task) -> Iterator[Record]: ...  # the task's records with `data` set


@dataclasses.dataclass(frozen=True)
class Input:
    """What a reader read: everything the job needs to know about its input."""

    records: list[Record]
    class_names: list[str]  # label order (the reader's own, or --class_names after `load`)
    description: str  # a few words naming the input, for messages and metadata
    rejected: list[dict] = dataclasses.field(default_factory=list)  # dead letters found while reading
    loader: Loader | None = None  # None: the decode step reads each record's `path`
    channels: int | None = None  # the input's own channel count; None: 3 (1 with --grayscale)
    own_splits: bool = False  # True: every record's `split` is kept unless --splits is given


class Reader(abc.ABC):
    name: str = ""  # registry key, shown in messages
    input_flag: str = ""  # the ReaderOptions field (and flag) that names this reader's input
    option_flags: tuple[str, ...] = ()  # further ReaderOptions fields only this reader reads
    rank: int = 0  # readers of one input flag are asked in rank order (lowest first)

    def accepts(self, options: ReaderOptions) -> bool:
        """Whether the input is this reader's (its input flag is set; called after the paths were checked)."""
        return True

    def check(self, options: ReaderOptions) -> None:  # noqa: B027 - most readers have nothing to check
        """Its own options, before anything is read: raises ValueError (or storage.StorageError), one line."""

    @abc.abstractmethod
    def read(self, options: ReaderOptions) -> Input:
        """Lists the input: records and label names; the inputs it cannot follow become `rejected` dead letters."""


class DirectoryReader(Reader):
    """A reader of a folder named by --input_dir (local or in a bucket)."""

    input_flag = "input_dir"

    def check(self, options: ReaderOptions) -> None:
        if not fs.isdir(options.input_dir):
            raise ValueError(f"--input_dir={options.input_dir} does not exist or is not a folder")


_REGISTRY: dict[str, Reader] = {}


def register(cls: type[Reader]) -> type[Reader]:
    if not cls.name or cls.input_flag not in {f.name for f in dataclasses.fields(ReaderOptions)}:
        raise ValueError(f"reader class {cls.__name__} needs a name and an input_flag among ReaderOptions' fields")
    if cls.name in _REGISTRY:
        raise ValueError(f"reader {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def registered() -> list[Reader]:
    """Every registered reader, in the order they are asked: by input flag, then rank, then name."""
    return sorted(_REGISTRY.values(), key=lambda r: (r.input_flag, r.rank, r.name))


def reader_names() -> list[str]:
    return sorted(_REGISTRY)


def candidates(options: ReaderOptions) -> list[Reader]:
    """The readers of the one input flag given, in rank order; ValueError if not exactly one input flag is
    given, or if an option is given that none of them reads. Looks at the flags only (no I/O)."""
    by_flag: dict[str, list[Reader]] = collections.defaultdict(list)
    for r in registered():
        by_flag[r.input_flag].append(r)
    given = [f for f in by_flag if getattr(options, f)]
    if len(given) != 1:
        known = "; ".join(f"--{f}: {', '.join(r.name for r in rs)}" for f, rs in by_flag.items())
        raise ValueError(f"give exactly one of {' or '.join('--' + f for f in by_flag)} (readers: {known})")
    chosen = by_flag[given[0]]
    readable = {given[0], *(f for r in chosen for f in r.option_flags)}
    for field in dataclasses.fields(ReaderOptions):
        value = getattr(options, field.name)
        if value and field.name not in readable:
            owners = [r.name for r in registered() if field.name in r.option_flags]
            owner_flags = sorted({f"--{r.input_flag}" for r in registered() if field.name in r.option_flags})
            raise ValueError(
                f"--{field.name}={value} is an option of the {'/'.join(owners)} reader: it needs "
                f"{' or '.join(owner_flags)}, not --{given[0]}"
            )
    return chosen


def pick(options: ReaderOptions) -> Reader:
    """The first reader of the given input flag that accepts the input, its options checked."""
    for reader in candidates(options):
        if reader.accepts(options):
            reader.check(options)
            return reader
    flag = candidates(options)[0].input_flag
    raise ValueError(f"--{flag}={getattr(options, flag)}: no reader takes it ({', '.join(reader_names())})")


def load(
    reader: Reader, options: ReaderOptions, class_names: list[str] | None = None, need_splits: bool = False
) -> Input:
    """`reader.read`, then what every input must pass: some records, unique keys, class names TFDS can keep,
    and (if given) exactly the labels of `class_names`, which then set the label order. `need_splits`
    (--keep_input_splits): every record must carry its input's split. Raises ValueError (one line)."""
    inp = reader.read(options)
    if not inp.records:
        raise ValueError(f"{inp.description} holds no images")
    check_unique_keys(inp.records)
    if need_splits and any(not r.split for r in inp.records):
        raise ValueError(f"--keep_input_splits: {inp.description} is not laid out as <split>/<label>/<image>")
    schema.check_class_names(inp.class_names, f"{inp.description}: class")
    if class_names is not None:
        check_class_names(inp.class_names, class_names)
        inp = dataclasses.replace(inp, class_names=list(class_names))
    return inp


def check_unique_keys(records: Iterable[Record]) -> None:
    """Raises ValueError naming the first duplicate keys (TFDS treats them as an error too)."""
    counts = collections.Counter(r.key for r in records)
    dups = [k for k, n in counts.items() if n > 1]
    if dups:
        raise ValueError(f"duplicate keys in the input ({len(dups)}), e.g. {dups[:3]}")


def check_class_names(present: Iterable[str], expected: list[str]) -> None:
    """Raises a one-line ValueError naming the labels missing from / extra to `expected`."""
    present, wanted = set(present), set(expected)
    if len(wanted) != len(expected):
        dups = sorted(n for n, c in collections.Counter(expected).items() if c > 1)
        raise ValueError(f"--class_names lists {dups} more than once")
    if present != wanted:
        parts = []
        if wanted - present:
            parts.append(f"missing from the input: {sorted(wanted - present)}")
        if present - wanted:
            parts.append(f"in the input but not in --class_names: {sorted(present - wanted)}")
        raise ValueError(f"the input's labels disagree with --class_names ({'; '.join(parts)})")
