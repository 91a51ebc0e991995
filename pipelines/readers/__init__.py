"""Input readers: each turns one kind of dataset into `Record`s (key, bytes, label)."""

from pipelines.readers.base import Record, check_class_names, check_unique_keys
from pipelines.readers.crawled import is_crawl_dir, read_crawl_dir
from pipelines.readers.folder import read_image_folder
from pipelines.readers.tfds_source import TfdsSource, read_tfds

__all__ = ["Record", "TfdsSource", "check_class_names", "check_unique_keys", "is_crawl_dir", "read_crawl_dir",
           "read_image_folder", "read_tfds"]
