import io

import numpy as np
import pytest
from PIL import Image

from crawler.validate import sniff_format, validate_image
from imaging import Limits, Rejected, decode_array


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def rgb(w=100, h=80):
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8), "RGB")


def test_rgb_jpeg_is_kept_byte_for_byte():
    data = encode(rgb(), "JPEG")
    v = validate_image(data)
    assert v.data == data and v.format == "jpeg" and (v.width, v.height) == (100, 80)


@pytest.mark.parametrize(
    "mode,fmt",
    [("CMYK", "JPEG"), ("P", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("RGB", "WEBP"), ("P", "GIF"), ("LA", "PNG")],
)
def test_other_modes_and_formats_are_converted_to_rgb_png(mode, fmt):
    img = rgb().convert(mode) if mode != "I;16" else Image.fromarray(np.full((80, 100), 40000, np.uint16))
    v = validate_image(encode(img, fmt))
    assert v.format == "png" and v.image.mode == "RGB"
    assert Image.open(io.BytesIO(v.data)).mode == "RGB"


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "empty"),
        (b"<!doctype html><html>hi</html>", "not_an_image"),
        (b"GIF89a" + b"\x00" * 20, "corrupt"),
    ],
)
def test_bad_bodies_are_rejected(data, reason):
    with pytest.raises(Rejected) as e:
        validate_image(data)
    assert e.value.reason == reason


@pytest.mark.parametrize("keep", [0.5, 0.95])  # 0.95: the reduced decode still reads the whole stream
def test_truncated_jpeg_is_rejected(keep):
    data = encode(rgb(300, 300), "JPEG")
    with pytest.raises(Rejected) as e:
        validate_image(data[: int(len(data) * keep)])
    assert e.value.reason == "corrupt"


def test_jpeg_hash_from_the_reduced_decode_agrees_with_a_full_decode():
    from crawler.dedup import perceptual_hash
    from crawler.flowersite.render import render_flower

    for i in range(6):
        data = encode(render_flower("rose", i, size=(400, 300)), "JPEG", quality=90)
        v = validate_image(data)
        assert v.image.size[0] < 400  # decoded at reduced scale
        full = Image.open(io.BytesIO(data)).convert("RGB")
        distance = bin(int(perceptual_hash(v.image), 16) ^ int(perceptual_hash(full), 16)).count("1")
        assert distance <= 2


def test_small_and_bomb_images_are_rejected():
    with pytest.raises(Rejected) as e:
        validate_image(encode(rgb(30, 30), "PNG"))
    assert e.value.reason == "too_small"
    with pytest.raises(Rejected) as e:
        validate_image(encode(rgb(200, 200), "PNG"), Limits(max_pixels=10_000))
    assert e.value.reason == "too_many_pixels"


def test_format_comes_from_magic_bytes():
    assert sniff_format(encode(rgb(), "PNG")) == "png"
    assert sniff_format(encode(rgb(), "WEBP")) == "webp"
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_format(b"hello") is None


@pytest.mark.parametrize(
    "data,limits,reason",
    [
        (b"", Limits(), "empty"),
        (encode(rgb(300, 300), "JPEG")[:2000], Limits(), "corrupt"),
        (encode(rgb(30, 30), "PNG"), Limits(), "too_small"),
        (encode(rgb(200, 200), "PNG"), Limits(max_pixels=10_000), "too_many_pixels"),
    ],
)
def test_the_crawler_and_the_beam_job_refuse_an_image_for_the_same_reason(data, limits, reason):
    with pytest.raises(Rejected) as crawler:
        validate_image(data, limits)
    with pytest.raises(Rejected) as job:
        decode_array(data, limits)
    assert crawler.value.reason == job.value.reason == reason
