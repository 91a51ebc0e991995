"""The reader registry: every registered reader recognises and reads a sample of its input; the
registry picks readers by their input flag and rank, refuses what is ambiguous, and fails loudly.

A new reader is a module of pipelines/readers/ that registers a `Reader`; the first test below
then fails until SAMPLES has a small input of its kind, and the others run it."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from pipelines import readers
from pipelines.readers import Input, Reader, ReaderOptions, base
from tests.pipelines.conftest import make_image_folder
from tests.pipelines.test_tfds_source import write_real_dataset


def _folder(tmp_path):
    make_image_folder(tmp_path / "in", classes=("cats", "dogs"), per_class=2)
    return ReaderOptions(input_dir=str(tmp_path / "in"))


def _crawl(tmp_path):
    root, lines = tmp_path / "raw", []
    for i, klass in enumerate(("rose", "daisy", "rose")):
        buf = io.BytesIO()
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(buf, "PNG")
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        (root / klass).mkdir(parents=True, exist_ok=True)
        (root / klass / f"{sha}.png").write_bytes(buf.getvalue())
        lines.append({"key": f"{klass}/{sha}", "class": klass, "sha256": sha, "format": "png", "url": f"u{i}"})
    lines.append({"key": "bad/1", "class": "..", "sha256": "0" * 64, "format": "png"})  # the reader rejects it
    (root / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
    return ReaderOptions(input_dir=str(root))


def _tfds(tmp_path):
    write_real_dataset(tmp_path / "tfds", sizes=(("train", (3,)), ("test", (2,))))
    return ReaderOptions(tfds_name="mnist", tfds_data_dir=str(tmp_path / "tfds"))


SAMPLES = {"folder": _folder, "crawled": _crawl, "tfds": _tfds}  # reader name -> a small input of its kind


def test_every_registered_reader_has_a_sample():
    assert set(SAMPLES) == set(readers.reader_names())


@pytest.mark.parametrize("name", readers.reader_names())
def test_a_reader_recognises_its_input_and_reads_it_the_same_every_time(name, tmp_path):
    options = SAMPLES[name](tmp_path)
    reader = readers.pick(options)
    assert reader.name == name
    first, again = (readers.load(reader, options) for _ in range(2))
    assert first == again and first.records
    assert {r.label for r in first.records} <= set(first.class_names)
    assert len({r.key for r in first.records}) == len(first.records)
    assert all(r.path for r in first.records) and first.description


def _read(options, class_names=None):
    return readers.load(readers.pick(options), options, class_names)


def test_what_the_readers_say_of_their_inputs(tmp_path):
    crawl = _read(_crawl(tmp_path))
    assert crawl.class_names == ["daisy", "rose"]  # the crawler's class order, not sorted by name
    assert [d["key"] for d in crawl.rejected] == ["bad/1"] and crawl.rejected[0]["reason"] == "bad_manifest_line"
    mnist = _read(_tfds(tmp_path))
    assert mnist.own_splits and mnist.channels == 1 and mnist.loader is not None
    assert {r.split for r in mnist.records} == {"train", "test"}
    folder = _read(_folder(tmp_path), class_names=["dogs", "cats"])
    assert folder.class_names == ["dogs", "cats"] and not folder.own_splits and folder.loader is None


@pytest.mark.parametrize(
    "options,message",
    [
        (ReaderOptions(), "give exactly one of --input_dir or --tfds_name (readers: --input_dir: crawled, folder"),
        (ReaderOptions(input_dir="x", tfds_name="mnist"), "give exactly one of"),
        (ReaderOptions(input_dir="x", tfds_data_dir="d"), "--tfds_data_dir=d is an option of the tfds reader"),
    ],
)
def test_one_input_flag_and_only_its_readers_options(options, message):
    with pytest.raises(ValueError) as e:
        readers.candidates(options)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_readers_of_one_flag_are_asked_in_rank_order_and_the_folder_reader_comes_last(tmp_path):
    assert [r.name for r in readers.candidates(ReaderOptions(input_dir="x"))] == ["crawled", "folder"]
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        readers.pick(ReaderOptions(input_dir=str(tmp_path / "missing")))


def test_a_registered_reader_is_picked_with_no_other_change(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @readers.register
    class Listing(Reader):  # a folder holding list.txt: one "path,label" a line
        name = "listing"
        input_flag = "input_dir"
        rank = -1

        def accepts(self, options):
            return (tmp_path / "list.txt").exists() and options.input_dir == str(tmp_path)

        def read(self, options):
            rows = [line.split(",") for line in (tmp_path / "list.txt").read_text().split()]
            records = [readers.Record(key=p, path=p, label=label) for p, label in rows]
            return Input(records, sorted({r.label for r in records}), f"listing {options.input_dir}")

    (tmp_path / "list.txt").write_text("a.jpg,x\nb.jpg,y\n")
    inp = _read(ReaderOptions(input_dir=str(tmp_path)))
    assert [r.key for r in inp.records] == ["a.jpg", "b.jpg"] and inp.class_names == ["x", "y"]
    with pytest.raises(ValueError, match="registered twice"):
        readers.register(Listing)

    class Nameless(Reader):
        input_flag = "input_dir"

        def read(self, options):
            raise AssertionError

    with pytest.raises(ValueError, match="needs a name"):
        readers.register(Nameless)


@pytest.mark.parametrize(
    "records,class_names,message",
    [
        ([], None, "holds no images"),
        (["a/1", "a/1"], None, "duplicate keys in the input (1)"),
        (["a/1"], ["a", "b"], "missing from the input: ['b']"),
    ],
)
def test_load_checks_every_input_alike(records, class_names, message):
    class Fixed(Reader):
        name, input_flag = "fixed", "input_dir"

        def read(self, options):
            recs = [readers.Record(key=k, path=k, label=k.split("/")[0]) for k in records]
            return Input(recs, sorted({r.label for r in recs}), "fixed input")

    with pytest.raises(ValueError) as e:
        readers.load(Fixed(), ReaderOptions(input_dir="x"), class_names)
    assert message in str(e.value)
