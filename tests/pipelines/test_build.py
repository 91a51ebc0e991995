"""The Beam job end to end on a generated image folder with bad files mixed in."""

import collections
import io
import json
import signal
import subprocess
import sys
import time

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_datasets as tfds
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

import imaging
from pipelines import build, finish, transforms
from pipelines.options import JobOptions
from pipelines.readers import Record
from pipelines.readers.folder import read_image_folder
from storage import fs
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

GOOD_PER_CLASS = 10
BAD_FILES = {  # name -> (bytes, reason code)
    "zero.jpg": (b"", "empty"),
    "text.jpg": (b"this is not a jpeg", "corrupt"),
    "tiny.png": (None, "too_small"),
    "truncated.jpg": (None, "corrupt"),
}


def _png(arr, mode=None):
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for label, colour in (("cats", (200, 50, 50)), ("dogs", (50, 50, 200))):
        d = root / label
        d.mkdir()
        for i in range(GOOD_PER_CLASS):
            arr = np.clip(rng.normal(colour, 30, (40 + i, 50, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(arr)
            if i == 0:
                img = img.convert("CMYK")
            elif i == 1:
                img = img.convert("P")
            elif i == 2:
                img = img.convert("RGBA")
            buf = io.BytesIO()
            img.save(buf, "JPEG" if img.mode in ("RGB", "CMYK") else "PNG")
            (d / f"{i:02d}.{'jpg' if img.mode in ('RGB', 'CMYK') else 'png'}").write_bytes(buf.getvalue())
    full = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (80, 80, 3), np.uint8)).save(full, "JPEG")
    contents = {
        "zero.jpg": b"",
        "text.jpg": b"this is not a jpeg",
        "tiny.png": _png(np.zeros((4, 4, 3), np.uint8)),
        "truncated.jpg": full.getvalue()[:400],
    }
    for name, data in contents.items():
        (root / "cats" / name).write_bytes(data)
    return root


def _build(folder, out, *extra):
    return run_cli(
        "pipelines.build_tfrecords",
        f"--input_dir={folder}",
        f"--output_dir={out}",
        "--dataset_name=pets",
        "--image_size=24",
        "--augment_copies=2",
        "--splits=train:0.6,validation:0.2,test:0.2",
        *extra,
    )


@pytest.fixture(scope="module")
def built(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    _build(image_folder, out)
    return out / "pets" / "1.0.0"


def test_good_images_kept_bad_ones_in_the_dead_letter(built, image_folder):
    stats = json.loads((built / "stats.json").read_text())
    originals = {s: n - stats["augmented_per_split"].get(s, 0) for s, n in stats["examples_per_split"].items()}
    # Splits are cut over all inputs of a class (on the driver); the bad ones then drop out.
    opts = JobOptions(output_dir="", dataset_name="pets", splits="train:0.6,validation:0.2,test:0.2")
    expected = collections.Counter(
        r.split
        for r in build.with_splits(read_image_folder(str(image_folder)), opts)
        if r.key.split("/")[-1] not in BAD_FILES
    )
    assert originals == dict(expected) and sum(originals.values()) == 2 * GOOD_PER_CLASS
    assert stats["augmented_per_split"] == {"train": 2 * originals["train"]}
    dead = [json.loads(line) for line in (built / "dead_letter.jsonl").read_text().splitlines()]
    by_name = {d["key"].split("/")[-1]: d for d in dead}
    assert [d["key"] for d in dead] == sorted(d["key"] for d in dead)  # merged from part files, by key
    assert not (built / "_parts").exists()
    assert set(by_name) == set(BAD_FILES)
    for name, (_, reason) in BAD_FILES.items():
        assert by_name[name]["reason"] == reason and by_name[name]["stage"] == "decode" and by_name[name]["detail"]
    assert stats["rejected_per_reason"] == dict(collections.Counter(r for _, r in BAD_FILES.values()))
    assert (built / "class_histogram.png").read_bytes()[:4] == b"\x89PNG"


def test_tfds_builder_from_directory_round_trip(built):
    builder = tfds.builder_from_directory(str(built))
    stats = json.loads((built / "stats.json").read_text())
    assert builder.info.features["label"].names == ["cats", "dogs"]
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == stats["examples_per_split"]
    parents = set()
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        assert ex["image"].shape == (24, 24, 3)
        key = ex["key"].decode()
        assert key.split("/")[0] == ["cats", "dogs"][ex["label"]]
        if ex["parent_key"]:
            parents.add(ex["parent_key"].decode())
            assert key.startswith(ex["parent_key"].decode() + "#aug")
    assert len(parents) == builder.info.splits["train"].num_examples // 3


def test_same_inputs_give_byte_identical_shards_whatever_the_runner(image_folder, built, tmp_path):
    _build(image_folder, tmp_path, "--direct_running_mode=in_memory", "--direct_num_workers=1")
    again = tmp_path / "pets" / "1.0.0"
    shards = sorted(p.name for p in built.glob("*.tfrecord-*"))
    assert shards and shards == sorted(p.name for p in again.glob("*.tfrecord-*"))
    for name in shards:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


def test_refuses_to_overwrite_and_fails_on_too_many_bad(image_folder, built):
    proc = run_cli(
        "pipelines.build_tfrecords",
        f"--input_dir={image_folder}",
        f"--output_dir={built.parent.parent}",
        "--dataset_name=pets",
        check=False,
    )
    assert proc.returncode != 0 and "already exists" in proc.stderr and "--overwrite" in proc.stderr
    proc = run_cli(
        "pipelines.build_tfrecords",
        f"--input_dir={image_folder}",
        f"--output_dir={built.parent.parent}",
        "--dataset_name=pets",
        "--version=2.0.0",
        "--max_bad_fraction=0.05",
        "--image_size=16",
        "--direct_running_mode=in_memory",
        check=False,
    )
    assert proc.returncode != 0 and "max_bad_fraction" in proc.stderr
    assert not (built.parent / "2.0.0").exists()
    assert not [p for p in built.parent.iterdir() if p.name.startswith(".incomplete")]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--input_dir=/nonexistent/dir"], "does not exist"),
        (["--splits=train:0.5,test:0.2"], "sum to 0.7"),
        (["--version=v1"], "must look like 1.0.0"),
        (["--keep_input_splits"], "not laid out as <split>/<label>/<image>"),
    ],
)
def test_bad_flags_fail_before_any_work(image_folder, tmp_path, flags, message):
    argv = ["pipelines.build_tfrecords", f"--output_dir={tmp_path}", *flags]
    if not any(f.startswith("--input_dir") for f in flags):
        argv.append(f"--input_dir={image_folder}")
    proc = run_cli(*argv, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-1500:]
    assert not list(tmp_path.iterdir())


def test_decode_step_with_beam_exception_handling(image_folder):
    records = [r for r in read_image_folder(str(image_folder)) if r.label == "cats"]
    with TestPipeline(runner="DirectRunner") as p:
        good, bad = (
            p
            | beam.Create(records)
            | beam.Map(transforms.load_and_decode, imaging.Limits(min_side=16), 3).with_exception_handling()
        )
        assert_that(
            good | "GoodKeys" >> beam.Map(lambda ri: ri[0].key),
            equal_to([f"cats/{i:02d}.{'png' if i in (1, 2) else 'jpg'}" for i in range(GOOD_PER_CLASS)]),
            label="good",
        )
        assert_that(
            bad | "BadKeys" >> beam.Map(lambda f: f[0].key), equal_to([f"cats/{n}" for n in BAD_FILES]), label="bad"
        )


def test_splits_are_assigned_per_class_on_the_driver():
    recs = [Record(key=f"{c}/{i}", path="", label=c) for c in "ab" for i in range(10)]
    opts = JobOptions(output_dir="", dataset_name="x", splits="train:0.8,validation:0.1,test:0.1")
    out = build.with_splits(recs, opts)
    for c in "ab":
        assert sorted(r.split for r in out if r.label == c) == ["test"] + ["train"] * 8 + ["validation"]


def test_two_phase_write_gives_the_shards_a_direct_write_gives(tmp_path):
    # Examples go to per-bundle part files; shards are assembled from (file, offset) entries.
    examples = [
        transforms.Example(
            "train" if i % 4 else "test",
            f"c{i % 3}",
            f"k{i:03d}" + ("#aug0" if i % 5 == 0 else ""),
            bytes([i]) * (50 + i),
        )
        for i in range(60)
    ]
    parts = transforms.parts_dirs(str(tmp_path / "tmp"))
    opts = JobOptions(output_dir=str(tmp_path), dataset_name="x", num_shards=2)
    with TestPipeline(runner="DirectRunner") as p:
        entries = (
            p | beam.Create(examples, reshuffle=True) | beam.ParDo(transforms.WriteExampleParts(parts["examples"]))
        )
        lines = (
            entries
            | beam.Map(transforms.keyed_for_shard, {}, opts)
            | beam.GroupByKey()
            | beam.Map(transforms.write_one_shard, str(tmp_path), "x", "")
        )
        assert_that(
            lines | beam.Map(lambda line: json.loads(line)["count"]) | beam.CombineGlobally(sum), equal_to([60])
        )
    for split in ("train", "test"):
        for i in range(2):
            name = f"x-{split}.tfrecord-{i:05d}-of-00002"
            mine = [
                (key, data) for s, _, key, data in examples if s == split and transforms.shards.shard_of(key, 2) == i
            ]
            transforms.shards.write_shard(str(tmp_path / "want"), mine)
            assert (tmp_path / name).read_bytes() == (tmp_path / "want").read_bytes(), name


def test_part_lines_merge_dedupes_retries_and_skips_only_a_torn_last_line(tmp_path):
    a = {"key": "b", "reason": "x"}
    (tmp_path / "attempt1").write_text(json.dumps(a) + "\n" + '{"key": "a", "rea')  # died mid-line
    (tmp_path / "attempt2").write_text(json.dumps({"key": "a", "reason": "y"}) + "\n" + json.dumps(a) + "\n")
    got = finish.read_part_lines(str(tmp_path), lambda d: d["key"])
    assert got == [{"key": "a", "reason": "y"}, a]
    (tmp_path / "bad").write_text('{"key": oops}\n' + json.dumps(a) + "\n")
    with pytest.raises(ValueError, match="bad: corrupt line"):
        finish.read_part_lines(str(tmp_path), lambda d: d["key"])


def test_a_build_killed_on_gs_and_run_again_publishes_the_uninterrupted_bytes(image_folder, gcs):
    """kill -9 while the workers write into gs://: nothing is published; the same command again takes
    over the dead build's lock, deletes its .incomplete-* folder and publishes what an uninterrupted
    run does."""
    for p in image_folder.rglob("*"):
        if p.is_file():
            fs.write_bytes(fs.join(gcs, "in", str(p.relative_to(image_folder))), p.read_bytes())
    argv = [
        "pipelines.build_tfrecords",
        f"--input_dir={gcs}/in",
        "--dataset_name=pets",
        "--image_size=24",
        "--augment_copies=2",
        "--splits=train:0.6,validation:0.2,test:0.2",
    ]
    run_cli(*argv, f"--output_dir={gcs}/straight")
    killed = fs.join(gcs, "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv, f"--output_dir={killed}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not [p for p in fs.list_files(killed) if "/_parts/examples/" in p]:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not fs.exists(fs.join(killed, "pets", "1.0.0", "dataset_info.json"))  # nothing published
    assert {n.split("-")[0] for n in fs.listdir(fs.join(killed, "pets"))} == {".incomplete", ".lock"}
    run_cli(*argv, f"--output_dir={killed}")
    assert fs.listdir(fs.join(killed, "pets")) == ["1.0.0"]
    straight, again = (fs.join(gcs, name, "pets", "1.0.0") for name in ("straight", "killed"))
    names = fs.listdir(straight)
    assert names == fs.listdir(again) and len([n for n in names if ".tfrecord-" in n]) == 3
    for name in names:
        if name != "stats.json":  # wall time and output_dir
            assert fs.read_bytes(fs.join(straight, name)) == fs.read_bytes(fs.join(again, name)), name
