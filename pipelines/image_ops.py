"""Per-image steps of the Beam job, as pure functions of bytes and arrays.

decode_image (validate + convert) -> resize -> augment (train only) -> encode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import warnings

import numpy as np
from PIL import Image, ImageEnhance

from crawler.validate import Rejected

RESIZE_POLICIES = ("pad", "crop", "stretch", "keep")


# One exception and one set of reason codes for the crawler and the Beam job (dead letters,
# stats.json): crawler.validate.Rejected(reason, detail), `reason` a stable snake_case code.
BadImage = Rejected
# Files a class folder may hold as images: what Pillow decodes here (the job re-encodes them).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO")


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    min_side: int = 16
    max_pixels: int = 40_000_000


def without_addresses(message: str) -> str:
    """Pillow's messages hold reprs with memory addresses ("<_io.BytesIO object at 0x7f...>"):
    without them a dead letter file reads the same from every run."""
    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", message)


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits(), channels: int = 3) -> np.ndarray:
    """Decodes and validates encoded image bytes into uint8 HxWxC.

    CMYK, palette, alpha (composited on white), 16-bit and grayscale are converted. Raises
    BadImage with reason `empty`, `unsupported_format`, `too_many_pixels` (decompression
    bombs, before decoding), `corrupt` (truncated, cannot decode) or `too_small`.
    """
    if not data:
        raise BadImage("empty", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in _DECODED_FORMATS:
                raise BadImage("unsupported_format", f"{img.format} is not decoded here")
            w, h = img.size
            if w * h > limits.max_pixels:
                raise BadImage("too_many_pixels", f"{w}x{h} over {limits.max_pixels} pixels")
            img.load()
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadImage("too_many_pixels", without_addresses(str(e))) from e
    except Exception as e:  # Pillow raises many types on bad data
        raise BadImage("corrupt", f"{type(e).__name__}: {without_addresses(str(e))}") from e
    if min(w, h) < limits.min_side:
        raise BadImage("too_small", f"{w}x{h} below {limits.min_side}px")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = Image.fromarray((np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8), "L")
    target = "RGB" if channels == 3 else "L"
    arr = np.asarray(img.convert(target))
    return arr if channels == 3 else arr[..., None]


def resize(image: np.ndarray, size: int, policy: str) -> np.ndarray:
    """Resizes HxWxC uint8 to size x size (aspect ratio kept unless 'stretch'; 'keep' = unchanged).

    pad: fit inside and pad with black (like tf.image.resize_with_pad); crop: fill and
    centre-crop; stretch: ignore the aspect ratio.
    """
    if policy == "keep":
        return image
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; known: {RESIZE_POLICIES}")
    h, w, c = image.shape
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    if policy == "stretch":
        out = pil.resize((size, size), Image.BILINEAR)
    else:
        scale = (min if policy == "pad" else max)(size / w, size / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        scaled = pil.resize((nw, nh), Image.BILINEAR)
        if policy == "pad":
            out = Image.new(pil.mode, (size, size))
            out.paste(scaled, ((size - nw) // 2, (size - nh) // 2))
        else:
            left, top = (nw - size) // 2, (nh - size) // 2
            out = scaled.crop((left, top, left + size, top + size))
    arr = np.asarray(out)
    return arr[..., None] if c == 1 else arr


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Offline augmentation (seed 004's recipe by default: flips and 0.125 shifts, no rotation)."""

    flip: bool = True
    shift: float = 0.125  # fraction of width/height, constant (black) fill
    rotation: float = 0.0  # max degrees; the seed found 15 degrees hurt
    zoom: float = 0.0  # max fraction zoomed in (random crop then resize back)
    brightness: float = 0.0  # max relative change
    contrast: float = 0.0
    saturation: float = 0.0


def augment_rng(key: str, copy: int, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{copy}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def augment(image: np.ndarray, key: str, copy: int, seed: int, p: AugmentParams) -> np.ndarray:
    """A deterministic augmented copy: the same (key, copy, seed) always gives the same pixels."""
    rng = augment_rng(key, copy, seed)
    h, w, c = image.shape
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    if p.zoom > 0:
        z = 1 - rng.uniform(0, p.zoom)
        cw, ch = max(1, round(w * z)), max(1, round(h * z))
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        pil = pil.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
    if p.rotation > 0:
        pil = pil.rotate(rng.uniform(-p.rotation, p.rotation), Image.BILINEAR, fillcolor=0)
    if p.flip and rng.uniform() < 0.5:
        pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
    if p.shift > 0:
        dx = int(round(rng.uniform(-p.shift, p.shift) * w))
        dy = int(round(rng.uniform(-p.shift, p.shift) * h))
        pil = pil.transform((w, h), Image.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=0)
    for amount, enhancer in (
        (p.brightness, ImageEnhance.Brightness),
        (p.contrast, ImageEnhance.Contrast),
        (p.saturation, ImageEnhance.Color),
    ):
        if amount > 0 and not (enhancer is ImageEnhance.Color and c == 1):
            pil = enhancer(pil).enhance(1 + rng.uniform(-amount, amount))
    arr = np.asarray(pil)
    return arr[..., None] if c == 1 else arr


def encode(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """JPEG (quality, no chroma subsampling surprises: Pillow's default 4:2:0) or PNG bytes."""
    c = image.shape[-1]
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    buf = io.BytesIO()
    if fmt == "jpeg":
        pil.save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        pil.save(buf, "PNG")
    else:
        raise ValueError(f"unknown encoding {fmt!r} (jpeg, png)")
    return buf.getvalue()
