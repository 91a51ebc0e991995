"""Input readers of the Beam job: each turns one kind of input into `Record`s (key, path or bytes, label).

A reader is a module of this package that registers a `Reader` (see base.py); the modules are
imported here by scanning the package, so adding a reader touches no other module, and
tests/pipelines/test_readers.py runs every registered one. Reader modules import what is heavy
(TensorFlow Datasets) only when they read: Beam workers import this package to unpickle
`Record`s and must not pay for it.
"""

from __future__ import annotations

import importlib
import pkgutil

from pipelines.readers.base import (
    DirectoryReader,
    Input,
    Loader,
    Reader,
    ReaderOptions,
    Record,
    candidates,
    load,
    pick,
    reader_names,
    register,
    registered,
)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "DirectoryReader",
    "Input",
    "Loader",
    "Reader",
    "ReaderOptions",
    "Record",
    "candidates",
    "load",
    "pick",
    "reader_names",
    "register",
    "registered",
]
