"""Is a byte string a usable image, and its pixels as RGB (or L) uint8? Pure functions of bytes.

The one validator the crawler (crawler.validate: what it stores) and the Beam job (the arrays it
resizes) both call, so both refuse the same images with the same reason codes:

- `empty`: zero bytes;
- `unsupported_format`: Pillow opened it, but not as one of DECODED_FORMATS (ICO, PSD, ...);
- `too_many_pixels`: the header declares more than `Limits.max_pixels` (decompression bombs:
  refused before a pixel is decoded);
- `corrupt`: not an image Pillow can open, or truncated (the image is decoded fully here, so a
  bad file fails now, not later in training);
- `too_small`: the shorter side is below `Limits.min_side`.

`normalise` is the one conversion to 8-bit pixels: alpha (RGBA, LA, PA, palette with
transparency) is composited on white, 16-bit and 32-bit grayscale keep their high byte, CMYK,
palette and the rest go through Pillow's own conversion.
"""

from __future__ import annotations

import dataclasses
import io
import re
import warnings
from collections.abc import Callable

import numpy as np
from PIL import Image

# What Pillow decodes here (MPO: the multi-picture JPEGs cameras write; its first picture is used).
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")


class Rejected(Exception):
    """The bytes are not a usable image: `reason` is a stable snake_case code, `detail` says why, for people."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass(frozen=True)
class Limits:
    min_side: int = 64  # pixels of the shorter side, at least
    max_pixels: int = 40_000_000  # width x height, at most


def without_addresses(message: str) -> str:
    """Pillow's messages hold reprs with memory addresses ("<_io.BytesIO object at 0x7f...>"):
    without them a file of reasons reads the same from every run."""
    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", message)


def open_image(
    data: bytes, limits: Limits = Limits(), before_load: Callable[[Image.Image], None] | None = None
) -> Image.Image:
    """Checks and fully decodes `data`; raises Rejected (see the module docstring for the reasons).

    Args:
      data: the encoded image.
      limits: the smallest side and the most pixels accepted.
      before_load: called with the opened image after the size check, before the decode (e.g. to
        ask Pillow for a reduced decode with `draft`).
    Returns:
      The decoded image, in its own mode (see `normalise`).
    """
    if not data:
        raise Rejected("empty", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in DECODED_FORMATS:
                raise Rejected("unsupported_format", f"{img.format} is not decoded here")
            width, height = img.size
            if width * height > limits.max_pixels:
                raise Rejected("too_many_pixels", f"{width}x{height} over {limits.max_pixels} pixels")
            if before_load is not None:
                before_load(img)
            img.load()  # full decode: truncated or corrupt data fails here
    except Rejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise Rejected("too_many_pixels", without_addresses(str(e))) from e
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        raise Rejected("corrupt", f"{type(e).__name__}: {without_addresses(str(e))}") from e
    if min(width, height) < limits.min_side:
        raise Rejected("too_small", f"{width}x{height} below {limits.min_side}px")
    return img


def normalise(img: Image.Image, channels: int = 3) -> Image.Image:
    """`img` as 8-bit RGB (`channels=3`) or L (`channels=1`), see the module docstring."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    elif img.mode.startswith("I;16") or img.mode == "I":
        img = Image.fromarray((np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8), "L")
    return img.convert("RGB" if channels == 3 else "L")


def decode_array(data: bytes, limits: Limits = Limits(), channels: int = 3) -> np.ndarray:
    """Checks and decodes `data` into uint8 HxWxC (C = `channels`, 3 or 1); raises Rejected."""
    arr = np.asarray(normalise(open_image(data, limits), channels))
    return arr if channels == 3 else arr[..., None]
