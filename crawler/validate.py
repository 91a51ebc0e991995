"""Is a downloaded body a usable image? A pure function of bytes.

The format comes from the magic bytes (never the URL or Content-Type), the size is checked
from the header before any pixel is decoded (decompression bombs), then the image is
decoded fully (truncated files fail here, not later in training). JPEG and PNG in RGB or
grayscale are kept byte for byte; anything else (CMYK, palette, alpha, 16-bit, WebP, the
first frame of a GIF) is converted to RGB and stored as PNG.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings

import numpy as np
from PIL import Image

from crawler import dedup

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
ACCEPTED_FORMATS = ("jpeg", "png", "webp", "gif")
_KEEP_AS_IS = {("jpeg", "RGB"), ("jpeg", "L"), ("png", "RGB"), ("png", "L")}


class Rejected(Exception):
    """The body is not an acceptable image; `reason` is a short stable label."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass(frozen=True)
class Limits:
    min_side: int = 64
    max_pixels: int = 40_000_000


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
        return "jpg" if self.format == "jpeg" else "png"


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
    if not data:
        raise Rejected("empty", "zero bytes")
    fmt = sniff_format(data)
    if fmt is None:
        head = data[:64].lstrip().lower()
        kind = "html" if head.startswith((b"<!doctype html", b"<html")) else "unknown"
        raise Rejected("not_an_image", f"magic bytes say {kind}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > limits.max_pixels:
                raise Rejected("too_many_pixels", f"{width}x{height} over {limits.max_pixels} pixels")
            keep = (fmt, img.mode) in _KEEP_AS_IS
            if keep and fmt == "jpeg":
                # Stored byte for byte, so pixels only feed the perceptual hash: decode in
                # grayscale at 1/2-1/8 scale in the DCT domain. Every byte of the entropy-coded
                # data is still decoded (truncation fails the same), at about a third the cost.
                img.draft("L", (dedup.HASH_INPUT_SIDE, dedup.HASH_INPUT_SIDE))
            img.load()  # full decode: truncated or corrupt data fails here
    except Rejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Rejected("too_many_pixels", str(e)) from e
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        raise Rejected("corrupt", f"{type(e).__name__}: {e}") from e
    if min(width, height) < limits.min_side:
        raise Rejected("too_small", f"{width}x{height} below {limits.min_side}px")
    if keep:
        pixels = img
        stored, stored_fmt = data, fmt
    else:
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode.startswith("I;16") or img.mode == "I":
            high_byte = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
            rgb = Image.fromarray(high_byte, "L").convert("RGB")
        else:
            rgb = img.convert("RGB")
        buf = io.BytesIO()
        rgb.save(buf, "PNG")
        stored, stored_fmt, pixels = buf.getvalue(), "png", rgb
    return ValidImage(stored, stored_fmt, fmt, width, height, hashlib.sha256(stored).hexdigest(), pixels)
