import numpy as np
import pytest
from PIL import Image

from imaging import Limits, decode_array
from pipelines.image_ops import AugmentParams, augment, encode, resize

RNG = np.random.default_rng(1)
RGB = Image.fromarray(RNG.integers(0, 255, (60, 90, 3), np.uint8), "RGB")


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
    assert np.array_equal(decode_array(encode(img, "png"), Limits(min_side=16)), img)
    assert encode(img, "jpeg", 80)[:3] == b"\xff\xd8\xff"
    with pytest.raises(ValueError):
        encode(img, "bmp")
