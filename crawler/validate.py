"""What the crawler stores of a downloaded body: a pure function of bytes.

The format comes from the magic bytes (never the URL or Content-Type); the checks and the full
decode are imaging.validate's, the Beam job's too (one set of reason codes; the crawler adds
`not_an_image`). JPEG and PNG in RGB or grayscale are kept byte for byte; anything else (CMYK,
palette, alpha, 16-bit, WebP, the first frame of a GIF) is converted to RGB and stored as PNG.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

from PIL import Image

from crawler import dedup, manifest
from imaging import Limits, Rejected, normalise, open_image

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
_KEEP_AS_IS = {("jpeg", "RGB"), ("jpeg", "L"), ("png", "RGB"), ("png", "L")}


@dataclasses.dataclass(frozen=True)
class ValidImage:
    data: bytes  # what is stored: the original bytes, or a PNG of the RGB conversion
    format: str  # of `data`: 'jpeg' or 'png'
    source_format: str
    width: int
    height: int
    sha256: str
    image: Image.Image  # decoded pixels for perceptual hashing (JPEGs: a reduced grayscale decode)

    @property
    def ext(self) -> str:
        return manifest.extension(self.format)


def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes, or None."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def validate_image(data: bytes, limits: Limits = Limits()) -> ValidImage:
    """Decodes and checks `data`; raises Rejected(reason) if it is not a usable image."""
    fmt = sniff_format(data)
    if data and fmt is None:
        head = data[:64].lstrip().lower()
        kind = "html" if head.startswith((b"<!doctype html", b"<html")) else "unknown"
        raise Rejected("not_an_image", f"magic bytes say {kind}")
    size: list[int] = []  # of the file: a reduced decode is smaller

    def reduce_kept_jpeg(img: Image.Image) -> None:
        size.extend(img.size)
        if fmt == "jpeg" and (fmt, img.mode) in _KEEP_AS_IS:
            # Stored byte for byte, so pixels only feed the perceptual hash: decode in grayscale at
            # 1/2-1/8 scale in the DCT domain. Every byte of the entropy-coded data is still decoded
            # (truncation fails the same), at about a third the cost.
            img.draft("L", (dedup.HASH_INPUT_SIDE, dedup.HASH_INPUT_SIDE))

    img = open_image(data, limits, reduce_kept_jpeg)
    width, height = size
    if (fmt, img.mode) in _KEEP_AS_IS:  # a reduced decode keeps a kept JPEG's mode in the set (L)
        stored, stored_fmt, pixels = data, fmt, img
    else:
        pixels = normalise(img)
        buf = io.BytesIO()
        pixels.save(buf, "PNG")
        stored, stored_fmt = buf.getvalue(), "png"
    return ValidImage(stored, stored_fmt, fmt, width, height, hashlib.sha256(stored).hexdigest(), pixels)
