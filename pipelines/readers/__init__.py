"""Input readers: each turns one kind of dataset into `Record`s (key, bytes, label)."""

from pipelines.readers.base import Record, check_unique_keys
from pipelines.readers.crawled import is_crawl_dir, read_crawl_dir
from pipelines.readers.folder import read_image_folder

__all__ = ["Record", "check_unique_keys", "is_crawl_dir", "read_crawl_dir", "read_image_folder"]
