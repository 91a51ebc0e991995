"""Any image folder: root/<label>/<image>, or root/<split>/<label>/<image> (local or in a bucket).

Every file in a class folder is an input: an image by its extension (image_ops.IMAGE_EXTENSIONS),
or a dead letter of the job (`unsupported_extension`), never skipped without a word.
"""

from __future__ import annotations

from pipelines.image_ops import IMAGE_EXTENSIONS
from pipelines.readers.base import DirectoryReader, Input, ReaderOptions, Record, register
from storage import fs

KNOWN_SPLITS = ("train", "validation", "val", "test")


def read_image_folder(root: str) -> list[Record]:
    """Records keyed by their path relative to `root` (deterministic and unique).

    One listing of everything under `root` (on a bucket: one paged listing, not one per folder).
    Raises ValueError if `root` holds nothing or a class folder holds no image file (other
    files of a class folder are records too: the job dead-letters them).
    """
    if not fs.isdir(root):
        raise ValueError(f"input folder {root} does not exist")
    entries = fs.list_files(root, folders=True)
    folders = [tuple(e.rstrip("/").split("/")) for e in entries if e.endswith("/")]
    top = sorted(f[0] for f in folders if len(f) == 1)
    presplit = bool(top) and all(t in KNOWN_SPLITS for t in top)
    depth = 2 if presplit else 1
    images: dict[tuple[str, ...], list[str]] = {f: [] for f in folders if len(f) == depth}
    for e in entries:
        parts = e.split("/")
        if tuple(parts[:-1]) in images and parts[-1]:
            images[tuple(parts[:-1])].append(parts[-1])
    records, empty = [], []
    for d, names in sorted(images.items()):
        split, label = (d[0], d[1]) if presplit else ("", d[0])
        if not any(n.lower().endswith(IMAGE_EXTENSIONS) for n in names):
            empty.append("/".join(d))
        for name in sorted(names):
            path = fs.join(root, *d, name)
            records.append(
                Record(
                    key="/".join((*d, name)),
                    path=path,
                    label=label,
                    source=path,
                    split={"val": "validation"}.get(split, split),
                )
            )
    if empty:  # a class the job could only silently drop: say so before any work
        raise ValueError(
            f"class folder(s) with no {'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} image in "
            f"{root}: {', '.join(e + '/' for e in empty)}"
        )
    return records


@register
class FolderReader(DirectoryReader):
    """Any image folder: the reader of --input_dir that no reader of lower rank accepted."""

    name = "folder"
    rank = 100

    def read(self, options: ReaderOptions) -> Input:
        records = read_image_folder(options.input_dir)
        return Input(records, sorted({r.label for r in records}), f"image folder {options.input_dir}")
