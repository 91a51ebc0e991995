"""The one image validator: the Beam job's decode to arrays (the crawler's use is in tests/crawler/test_validate.py)."""

import io

import numpy as np
import pytest
from PIL import Image

from imaging import Limits, Rejected, decode_array

JOB = Limits(min_side=16)  # the Beam job's default (--min_side=16)


def enc(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


RNG = np.random.default_rng(1)
RGB = Image.fromarray(RNG.integers(0, 255, (60, 90, 3), np.uint8), "RGB")


@pytest.mark.parametrize(
    "img,fmt",
    [
        (RGB.convert("CMYK"), "JPEG"),
        (RGB.convert("P"), "PNG"),
        (RGB.convert("RGBA"), "PNG"),
        (RGB.convert("L"), "JPEG"),
        (Image.fromarray(np.full((60, 90), 50000, np.uint16)), "PNG"),
        (RGB.convert("LA"), "PNG"),
        (RGB, "WEBP"),
    ],
)
def test_modes_are_converted_not_rejected(img, fmt):
    arr = decode_array(enc(img, fmt), JOB)
    assert arr.shape == (60, 90, 3) and arr.dtype == np.uint8
    assert decode_array(enc(img, fmt), JOB, channels=1).shape == (60, 90, 1)


def test_sixteen_bit_keeps_the_high_byte():
    arr = decode_array(enc(Image.fromarray(np.full((20, 20), 0xAB00, np.uint16))), JOB, channels=1)
    assert (arr == 0xAB).all()


def test_alpha_is_composited_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:10] = (255, 0, 0, 255)  # opaque red on top, fully transparent below
    arr = decode_array(enc(Image.fromarray(rgba, "RGBA")), JOB)
    assert (arr[:10] == (255, 0, 0)).all() and (arr[10:] == 255).all()


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"not an image at all", "corrupt"),
        (enc(RGB, "JPEG")[:300], "corrupt"),
        (enc(RGB, "ICO"), "unsupported_format"),
        (enc(RGB.resize((8, 8))), "too_small"),
    ],
)
def test_bad_images_raise_with_a_stable_reason_code_and_a_detail(data, reason):
    with pytest.raises(Rejected) as e:
        decode_array(data, JOB)
    assert e.value.reason == reason and e.value.detail and " at 0x" not in e.value.detail


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_gif_bmp_and_tiff_decode(fmt):
    assert decode_array(enc(RGB, fmt), JOB).shape == (RGB.size[1], RGB.size[0], 3)


def test_bomb_is_rejected_before_decoding():
    with pytest.raises(Rejected) as e:
        decode_array(enc(RGB), Limits(min_side=16, max_pixels=1000))
    assert e.value.reason == "too_many_pixels"


def test_a_declared_size_over_pillows_own_bomb_limit_is_too_many_pixels():
    """Pillow itself refuses at open() what it takes for a bomb (over twice Image.MAX_IMAGE_PIXELS), before
    our own limit is asked: the reason code is the same."""
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 100
    bomb = enc(Image.new("1", (side, side)))  # a few dozen KB declaring ~180 million pixels
    with pytest.raises(Rejected) as e:
        decode_array(bomb, Limits(max_pixels=10**12))
    assert e.value.reason == "too_many_pixels" and " at 0x" not in e.value.detail
