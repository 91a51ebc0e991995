"""Input readers: each turns one kind of dataset into `Record`s (key, bytes, label).

The readers run on the driver and are imported on first use: Beam workers unpickle `Record`s
(this package), and must not pay for TensorFlow, which the folder readers use for gs:// paths.
"""

import importlib

from pipelines.readers.base import Record, check_class_names, check_unique_keys

_LAZY = {
    "is_crawl_dir": "crawled",
    "read_crawl_dir": "crawled",
    "read_image_folder": "folder",
    "TfdsSource": "tfds_source",
    "read_tfds": "tfds_source",
}

__all__ = [
    "Record",
    "TfdsSource",
    "check_class_names",
    "check_unique_keys",
    "is_crawl_dir",
    "read_crawl_dir",
    "read_image_folder",
    "read_tfds",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"pipelines.readers.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
