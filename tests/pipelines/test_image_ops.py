import io

import numpy as np
import pytest
from PIL import Image

from pipelines.image_ops import AugmentParams, BadImage, DecodeLimits, augment, decode_image, encode, resize


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
    arr = decode_image(enc(img, fmt))
    assert arr.shape == (60, 90, 3) and arr.dtype == np.uint8
    assert decode_image(enc(img, fmt), channels=1).shape == (60, 90, 1)


def test_sixteen_bit_keeps_the_high_byte():
    arr = decode_image(enc(Image.fromarray(np.full((20, 20), 0xAB00, np.uint16))), channels=1)
    assert (arr == 0xAB).all()


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
    with pytest.raises(BadImage) as e:
        decode_image(data)
    assert e.value.reason == reason and e.value.detail and " at 0x" not in e.value.detail


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_gif_bmp_and_tiff_decode(fmt):
    assert decode_image(enc(RGB, fmt)).shape == (RGB.size[1], RGB.size[0], 3)


def test_bomb_is_rejected_before_decoding():
    with pytest.raises(BadImage) as e:
        decode_image(enc(RGB), DecodeLimits(max_pixels=1000))
    assert e.value.reason == "too_many_pixels"


@pytest.mark.parametrize("policy", ["pad", "crop", "stretch"])
def test_resize_policies_give_square_images(policy):
    out = resize(np.asarray(RGB), 32, policy)
    assert out.shape == (32, 32, 3)


def test_pad_keeps_aspect_with_black_bars_and_keep_is_identity():
    bright = np.full((20, 40, 3), 200, np.uint8)
    out = resize(bright, 40, "pad")
    assert (out[:10] == 0).all() and (out[10:30] == 200).all() and (out[30:] == 0).all()
    assert resize(bright, 40, "keep") is bright
    assert resize(bright[..., :1], 40, "crop").shape == (40, 40, 1)


def test_augment_is_deterministic_per_key_copy_and_seed():
    img = np.asarray(RGB)
    p = AugmentParams(flip=True, shift=0.125, rotation=10, zoom=0.1, brightness=0.2, contrast=0.2, saturation=0.2)
    a = augment(img, "k", 0, 0, p)
    assert np.array_equal(a, augment(img, "k", 0, 0, p))
    assert not np.array_equal(a, augment(img, "k", 1, 0, p))
    assert not np.array_equal(a, augment(img, "k", 0, 1, p))
    assert a.shape == img.shape


def test_shift_fills_with_black():
    img = np.full((40, 40, 3), 255, np.uint8)
    outs = [augment(img, f"k{i}", 0, 0, AugmentParams(flip=False, shift=0.25)) for i in range(8)]
    assert any((o == 0).any() for o in outs)


def test_encode_roundtrip():
    img = np.asarray(RGB)
    assert np.array_equal(decode_image(encode(img, "png")), img)
    assert encode(img, "jpeg", 80)[:3] == b"\xff\xd8\xff"
    with pytest.raises(ValueError):
        encode(img, "bmp")
