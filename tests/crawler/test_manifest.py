"""The manifest line, as the crawler writes it and the Beam job's reader reads it."""

import dataclasses
import json

import pytest

from crawler.manifest import EXTENSIONS, ManifestRecord, extension

SHA = "ab" * 32


def record(**kw) -> ManifestRecord:
    return dataclasses.replace(
        ManifestRecord(
            "http://h/a.jpg",
            "daisy",
            "http://h/",
            "html",
            "2026-01-02T03:04:05Z",
            key=f"daisy/{SHA}",
            sha256=SHA,
            width=300,
            height=200,
            bytes=1234,
            format="jpeg",
            source_format="webp",
            phash="0f" * 8,
            query="daisy",
            thumbnail_url="http://h/t.jpg",
        ),
        **kw,
    )


def test_a_line_round_trips_in_its_documented_field_order():
    r = record(extra={"license": "CC BY-SA 4.0", "author": "A"})
    line = json.loads(json.dumps(r.to_json()))
    assert list(line) == [
        *("url", "class", "page_url", "source", "time", "key", "sha256", "width", "height", "bytes", "format"),
        *("source_format", "phash", "query", "thumbnail_url", "license", "author"),
    ]
    assert ManifestRecord.from_json(line) == r
    assert r.file == f"daisy/{SHA}.jpg"


def test_the_extension_of_each_stored_format():
    assert EXTENSIONS == {"jpeg": "jpg", "png": "png"}
    assert extension("png") == "png" and record(format="png").file.endswith(".png")
    with pytest.raises(KeyError):
        extension("gif")  # the crawler stores other formats as PNG


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"class": "/etc"}, "not a folder name"),
        ({"class": ".."}, "not a folder name"),
        ({"class": "daisy "}, "not a folder name"),
        ({"class": "a\\b"}, "not a folder name"),
        ({"sha256": "../../etc"}, "not 64 hex digits"),
        ({"sha256": SHA.upper()}, "not 64 hex digits"),
        ({"format": "gif"}, "not one the crawler stores"),
        ({"format": 7}, "no format"),
        ({"key": ""}, "no key"),
    ],
)
def test_a_line_that_would_lead_outside_the_folder_is_refused_naming_why(change, problem):
    with pytest.raises(ValueError, match=problem):
        ManifestRecord.from_json({**record().to_json(), **change})


def test_a_minimal_line_reads_and_informative_fields_of_the_wrong_type_are_their_default():
    line = {"key": "k", "class": "daisy", "sha256": SHA, "format": "png", "url": 5, "phash": None, "width": True}
    r = ManifestRecord.from_json(line)
    assert (r.key, r.klass, r.file) == ("k", "daisy", f"daisy/{SHA}.png")
    assert (r.url, r.phash, r.width, r.extra) == ("", "", 0, {})
    with pytest.raises(ValueError, match="not a JSON object"):
        ManifestRecord.from_json(["not", "an", "object"])
