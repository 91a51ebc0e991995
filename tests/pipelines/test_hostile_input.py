"""The Beam job against hostile and odd input (issue #13): class names TFDS cannot keep, files that
are not images, duplicate photos, a tampered crawl manifest, two builds of one version, a publish
killed midway, bad flags, a full disk, and a JPEG broken inside a record with a valid CRC."""

from __future__ import annotations

import hashlib
import io
import json
import resource
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import flagsaver
from PIL import Image

from pipelines import build, build_tfrecords, dedup, inspect_dataset, publish, shards
from pipelines.options import JobOptions
from storage import fs
from tests.pipelines.conftest import run_main

LOCAL = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _noise(seed: int, side: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (side // 4, side // 4, 3), np.uint8)).resize((side, side))


def _save(img: Image.Image, path, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    """cats/dogs with GIF, BMP and TIFF images, a text file, an exact copy under another name, a
    re-encoded copy (near duplicate) in the other class."""
    root = tmp_path_factory.mktemp("odd")
    for i in range(6):
        _save(_noise(i), root / "cats" / f"{i}.jpg", "JPEG")
        _save(_noise(100 + i), root / "dogs" / f"{i}.jpg", "JPEG")
    _save(_noise(50), root / "cats" / "g.gif", "GIF")
    _save(_noise(51), root / "cats" / "b.bmp", "BMP")
    _save(_noise(52), root / "dogs" / "t.tiff", "TIFF")
    (root / "cats" / "notes.txt").write_text("not an image")
    shutil.copy(root / "cats" / "0.jpg", root / "cats" / "copy-of-0.jpg")
    Image.open(root / "cats" / "1.jpg").save(root / "dogs" / "reencoded-1.png")
    return root


def _build(folder, out, *flags):
    return run_main(
        build_tfrecords.main,
        f"--input_dir={folder}",
        f"--output_dir={out}",
        "--dataset_name=pets",
        "--image_size=16",
        *LOCAL,
        *flags,
    )


def _keys_per_split(data_dir) -> dict[str, str]:
    stats = json.loads((data_dir / "stats.json").read_text())
    out = {}
    for split in stats["examples_per_split"]:
        for path in fs.glob(str(data_dir), f"pets-{split}.tfrecord-*"):
            for record in shards.read_records(path):
                ex = tf.train.Example.FromString(record)
                out[ex.features.feature["key"].bytes_list.value[0].decode()] = split
    return out


@pytest.fixture(scope="module")
def grouped(odd_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("grouped")
    assert _build(odd_folder, out, "--splits=train:0.5,validation:0.25,test:0.25") == 0
    return out / "pets" / "1.0.0"


def test_every_file_of_a_class_folder_is_an_input_or_a_dead_letter(grouped):
    stats = json.loads((grouped / "stats.json").read_text())
    keys = _keys_per_split(grouped)
    assert {"cats/g.gif", "cats/b.bmp", "dogs/t.tiff"} <= set(keys)  # were skipped without a word
    dead = [json.loads(line) for line in (grouped / "dead_letter.jsonl").read_text().splitlines()]
    assert [(d["key"], d["reason"]) for d in dead] == [("cats/notes.txt", "unsupported_extension")]
    assert (
        stats["inputs"] == 18
        and stats["rejected"] == 1
        and stats["rejected_per_reason"] == {"unsupported_extension": 1}
    )


def test_duplicates_are_grouped_into_one_split_and_reported(grouped):
    stats = json.loads((grouped / "stats.json").read_text())
    keys = _keys_per_split(grouped)
    assert keys["cats/0.jpg"] == keys["cats/copy-of-0.jpg"] and keys["cats/1.jpg"] == keys["dogs/reencoded-1.png"]
    d = stats["duplicates"]
    assert (d["mode"], d["groups"], d["inputs_in_groups"], d["exact_groups"], d["cross_class_groups"]) == (
        "group",
        2,
        4,
        1,
        1,
    )
    assert sorted(d["examples"]) == [["cats/0.jpg", "cats/copy-of-0.jpg"], ["cats/1.jpg", "dogs/reencoded-1.png"]]


def test_dedup_drop_dead_letters_the_copies_and_reruns_are_byte_identical(odd_folder, tmp_path):
    for run in ("a", "b"):
        assert _build(odd_folder, tmp_path / run, "--dedup=drop") == 0
    a, b = (tmp_path / run / "pets" / "1.0.0" for run in ("a", "b"))
    assert (a / "dead_letter.jsonl").read_bytes() == (b / "dead_letter.jsonl").read_bytes()
    dead = {d["key"]: d for d in map(json.loads, (a / "dead_letter.jsonl").read_text().splitlines())}
    assert dead["cats/copy-of-0.jpg"]["reason"] == "duplicate" and "cats/0.jpg" in dead["cats/copy-of-0.jpg"]["detail"]
    assert dead["dogs/reencoded-1.png"]["reason"] == "near_duplicate"
    stats = json.loads((a / "stats.json").read_text())
    assert stats["duplicates"]["dropped"] == 2 and "cats/copy-of-0.jpg" not in _keys_per_split(a)
    assert stats["rejected_per_reason"] == {"duplicate": 1, "near_duplicate": 1, "unsupported_extension": 1}


def test_the_plan_groups_transitively_and_keeps_groups_whole():
    h = "0123456789abcdef"
    near = f"{int(h, 16) ^ 0b111:016x}"  # 3 bits away
    nearer = f"{int(near, 16) ^ (0b111 << 8):016x}"  # 3 more: 6 from the first, still a chain
    fps = [dedup.Fingerprint(f"c/{i}", "c", "", f"s{i}", p) for i, p in enumerate([h, near, nearer])]
    fps += [dedup.Fingerprint(f"c/x{i}", "c", "", f"t{i}", f"{(i + 1) * 0x1111111111111111:016x}") for i in range(14)]
    groups = dedup.groups(fps, max_distance=3)
    assert [[f.key for f in g] for g in groups] == [["c/0", "c/1", "c/2"]]
    plan = dedup.plan(fps, "group", 3, "train:0.5,test:0.5", "salt", False)
    assert len({plan.split[k] for k in ("c/0", "c/1", "c/2")}) == 1 and not plan.drop
    assert dedup.plan(fps, "drop", 3, "train:0.5,test:0.5", "salt", False).drop.keys() == {"c/1", "c/2"}


@pytest.mark.parametrize("name", ["x\ny", "   ", " leading"])
def test_class_folders_tfds_cannot_name_are_refused_naming_the_folder(tmp_path, capsys, name):
    for label in ("ok", name):
        _save(_noise(1), tmp_path / "in" / label / "1.jpg", "JPEG")
    assert _build(tmp_path / "in", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and repr(name) in err and "\n" not in err
    assert not (tmp_path / "out" / "pets").exists()


def test_inspect_compares_the_label_file_and_decodes_every_image(grouped, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(grouped, copy)
    assert run_main(inspect_dataset.main, str(copy)) == 0
    labels = copy / "label.labels.txt"
    labels.write_text("cats\ndo\ngs\n")  # what a class named "do\ngs" made TFDS read
    # a JPEG cut short inside a record whose CRC is right
    shard = sorted(copy.glob("pets-train.tfrecord-*"))[0]
    records = list(shards.read_records(str(shard)))
    ex = tf.train.Example.FromString(records[1])
    image = ex.features.feature["image"].bytes_list.value
    image[0] = image[0][: len(image[0]) // 2]
    records[1] = ex.SerializeToString()
    with tf.io.TFRecordWriter(str(shard)) as w:
        for r in records:
            w.write(r)
    capsys.readouterr()
    assert run_main(inspect_dataset.main, str(copy)) == 1
    out = capsys.readouterr().out
    assert "label.labels.txt: TFDS reads 3 class names" in out
    assert f"{shard.name}, record 1" in out and "does not decode" in out


def _crawl_folder(root, outside):
    lines = []
    for klass, seeds in (("daisy", (1, 2, 3)), ("rose", (4, 5, 6))):
        for s in seeds:
            buf = io.BytesIO()
            _noise(s).save(buf, "JPEG")
            sha = hashlib.sha256(buf.getvalue()).hexdigest()
            (root / klass).mkdir(parents=True, exist_ok=True)
            (root / klass / f"{sha}.jpg").write_bytes(buf.getvalue())
            lines.append({"key": f"{klass}/{sha}", "class": klass, "sha256": sha, "format": "jpeg", "url": "u"})
    _noise(9).save(outside / f"{'0' * 64}.jpg", "JPEG")
    lines += [
        {"key": "evil/1", "class": str(outside), "sha256": "0" * 64, "format": "jpeg"},
        {"key": "evil/2", "class": "..", "sha256": "0" * 64, "format": "jpeg"},
        {"key": "evil/3", "class": "daisy", "sha256": "../../etc", "format": "jpeg"},
        {"key": "evil/4", "class": "daisy", "format": "jpeg"},
    ]
    (root / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))


def test_a_tampered_manifest_line_is_a_dead_letter_and_nothing_outside_is_read(tmp_path):
    (tmp_path / "outside").mkdir()
    _crawl_folder(tmp_path / "crawl", tmp_path / "outside")
    assert _build(tmp_path / "crawl", tmp_path / "out", "--splits=train:0.5,test:0.5", "--max_bad_fraction=0.5") == 0
    built = tmp_path / "out" / "pets" / "1.0.0"
    assert not any(k.startswith("evil/") for k in _keys_per_split(built)) and len(_keys_per_split(built)) == 6
    dead = [json.loads(line) for line in (built / "dead_letter.jsonl").read_text().splitlines()]
    assert [d["key"] for d in dead] == ["evil/1", "evil/2", "evil/3", "evil/4"]
    assert {d["reason"] for d in dead} == {"bad_manifest_line"} and all("manifest.jsonl:" in d["detail"] for d in dead)
    assert json.loads((built / "stats.json").read_text())["inputs"] == 10


_HOLD = textwrap.dedent("""
    import sys, time
    from storage import lock
    with lock.hold(sys.argv[1], "build of pets 1.0.0", sys.argv[2]):
        print("held", flush=True)
        time.sleep(60)
""")


def test_a_second_build_of_a_version_in_progress_is_refused(odd_folder, tmp_path, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "pets"), publish.lock_name("1.0.0")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert _build(odd_folder, tmp_path) == 2
    finally:
        proc.kill()
        proc.wait()
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "in use by another build of pets 1.0.0" in err
    assert not (tmp_path / "pets" / "1.0.0").exists()


def test_a_version_published_while_a_build_ran_is_not_replaced_without_overwrite(odd_folder, tmp_path):
    from pipelines.readers import Input
    from pipelines.readers.folder import read_image_folder

    opts = JobOptions(output_dir=str(tmp_path), dataset_name="pets", image_size=16, dedup="off")
    records = [r for r in read_image_folder(str(odd_folder)) if r.key.endswith(".jpg")]
    final = tmp_path / "pets" / "1.0.0"
    final.mkdir(parents=True)
    (final / "stats.json").write_text("{}")  # another build published meanwhile
    with pytest.raises(build.BuildError, match="published while this build ran"):
        build.run_build(Input(records, ["cats", "dogs"], "test"), opts, ["--runner=DirectRunner", *LOCAL])
    assert (final / "stats.json").read_text() == "{}" and sorted(p.name for p in final.parent.iterdir()) == ["1.0.0"]


def _version(folder: str, tag: str, names=("a.tfrecord", "b.tfrecord", publish.TFDS_INFO)) -> None:
    for n in names:
        fs.write_bytes(fs.join(folder, n), f"{tag}:{n}".encode())


def _content(folder: str) -> dict:
    return {n: fs.read_bytes(fs.join(folder, n)).decode() for n in fs.list_files(folder)}


@pytest.fixture(params=["local", "gs"])
def disk_or_bucket(request, tmp_path):
    """s3:// moves through the same code as gs:// (Beam's filesystems), at ten times the time per call."""
    return str(tmp_path) if request.param == "local" else request.getfixturevalue("gcs")


def test_a_publish_killed_at_any_step_shows_old_or_new_and_is_finished_by_the_next_build(disk_or_bucket, monkeypatch):
    """Kill the publish after each file move: a reader that finds dataset_info.json finds all of
    one version; `recover` then finishes the publish and deletes what killed builds left."""
    dataset = fs.join(disk_or_bucket, "pets")
    old_names = ("a.tfrecord", "old-only.tfrecord", publish.TFDS_INFO)
    real_rename, moves = fs.rename, []

    class Killed(BaseException):
        pass

    for kill_after in range(0, 8):
        fs.rmtree(dataset)
        _version(fs.join(dataset, "1.0.0"), "old", old_names)
        new = publish.incomplete_dir(dataset, "1.0.0")
        _version(new, "new")
        _version(publish.incomplete_dir(dataset, "1.0.0"), "stranded")  # a build killed long ago
        moves.clear()

        def rename(src, dst):
            if len(moves) == kill_after:
                raise Killed()
            moves.append(src)
            real_rename(src, dst)

        monkeypatch.setattr(fs, "rename", rename)
        try:
            publish.publish(new, dataset, "1.0.0")
        except Killed:
            seen = _content(fs.join(dataset, "1.0.0")) if fs.isdir(fs.join(dataset, "1.0.0")) else {}
            if publish.TFDS_INFO in seen:
                tags = {v.split(":")[0] for v in seen.values()}
                assert len(tags) == 1 and set(seen) == set(
                    old_names if tags == {"old"} else ("a.tfrecord", "b.tfrecord", publish.TFDS_INFO)
                )
        monkeypatch.setattr(fs, "rename", real_rename)
        publish.recover(dataset, "1.0.0")
        assert _content(fs.join(dataset, "1.0.0")) == {
            n: f"new:{n}" for n in ("a.tfrecord", "b.tfrecord", publish.TFDS_INFO)
        }
        assert fs.listdir(dataset) == ["1.0.0"], (kill_after, fs.listdir(dataset))


@pytest.mark.parametrize(
    "flag", ["--num_shards=-3", "--shard_size_mb=0", "--dedup=bogus", "--dedup_distance=65", "--max_bad_fraction=2"]
)
def test_bad_flag_values_are_one_line_exit_2_before_any_work(flag, capsys):
    with flagsaver.flagsaver(), pytest.raises(SystemExit) as e:
        build_tfrecords._parse(["prog", "--input_dir=x", flag])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: flag") and flag.split("=")[0] in err and "\n" not in err


def test_a_full_disk_in_the_workers_is_one_line_and_publishes_nothing(odd_folder, tmp_path):
    def limit_file_size():  # writes past 3 kB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.build_tfrecords",
            f"--input_dir={odd_folder}",
            f"--output_dir={tmp_path}",
            "--dataset_name=pets",
            "--image_size=16",
            "--direct_num_workers=2",
        ],
        preexec_fn=limit_file_size,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and "errno 27" in errors[0] and "nothing was published" in errors[0]
    assert fs.listdir(str(tmp_path / "pets")) == []  # no version, no .incomplete-*, no lock
