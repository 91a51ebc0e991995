"""Per-image steps of the Beam job, as pure functions of arrays: resize -> augment (train only) -> encode.

The decode before them (checks, reason codes, conversion to uint8 RGB or L) is the crawler's too:
imaging.decode_array.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
from PIL import Image, ImageEnhance

RESIZE_POLICIES = ("pad", "crop", "stretch", "keep")
# Files a class folder may hold as images: what imaging decodes (imaging.DECODED_FORMATS; the job re-encodes them).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


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
