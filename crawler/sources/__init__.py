"""Image sources: each turns a class's queries into candidate URLs.

A source is a module of this package that calls `register`; modules are imported here by
scanning the package, so adding a source touches no other module.
"""

from __future__ import annotations

import importlib
import pkgutil

from crawler.sources.base import Source, SourceOptions, get_source, register, source_names

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["Source", "SourceOptions", "get_source", "register", "source_names"]
