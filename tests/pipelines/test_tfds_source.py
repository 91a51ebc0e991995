"""The TFDS reader with TFDS's own mock data: no download, ever.

`tfds.testing.mock_data` replaces the records of a dataset by random ones; the split names and
sizes come from metadata we write into a temporary data dir (so the builder is "prepared").
The mock lives in this process, so these builds run the in-memory DirectRunner here.
"""

import contextlib
import json
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import build_tfrecords
from pipelines.readers.tfds_source import TfdsInfo, TfdsSource, read_tfds
from tests.conftest import run_cli
from tests.pipelines.conftest import IN_PROCESS, run_main

N = 12  # examples per split: the mock yields this many for any split


def prepare_fake(data_dir, name, splits=("train", "test")):
    """Writes a dataset's real metadata (features, split sizes N) so the builder is prepared."""
    builder = tfds.builder(name, data_dir=str(data_dir))
    infos = [
        tfds.core.SplitInfo(
            name=s,
            shard_lengths=[N],
            num_bytes=0,
            filename_template=(
                tfds.core.naming.ShardedFileTemplate(
                    data_dir=builder.data_dir, dataset_name=name, split=s, filetype_suffix="tfrecord"
                )
            ),
        )
        for s in splits
    ]
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.data_path.mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)
    return builder


def mocked(data_dir):
    return tfds.testing.mock_data(num_examples=N, data_dir=str(data_dir), policy=tfds.testing.MockPolicy.USE_FILES)


def mock_labels(data_dir, name, split="train"):
    """The labels the mock yields, in order (the mock is deterministic)."""
    with mocked(data_dir):
        builder = tfds.builder(name, data_dir=str(data_dir))
        return [int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset(split=split))]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    prepare_fake(d, "mnist")
    prepare_fake(d, "cifar10")
    return d


def test_reader_lists_keys_labels_and_splits(tfds_dir):
    with mocked(tfds_dir):
        records, info, source = read_tfds("mnist", str(tfds_dir))
        tasks = TfdsSource("mnist", str(tfds_dir), info, chunk=5).tasks(records)
        loaded = [r for t in TfdsSource("mnist", str(tfds_dir), info).tasks(records) for r in source.read(t)]
    assert info.class_names == [str(i) for i in range(10)] and info.channels == 1
    assert [r.key for r in records[:2]] == ["mnist/test/0", "mnist/test/1"] and len(records) == 2 * N
    assert {r.split for r in records} == {"train", "test"} and all(r.data is None for r in records)
    assert [(s, start, len(rs)) for s, start, rs in tasks] == [
        ("test", 0, 5),
        ("test", 5, 5),
        ("test", 10, 2),
        ("train", 0, 5),
        ("train", 5, 5),
        ("train", 10, 2),
    ]
    assert [r.key for r in loaded] == [r.key for r in records]
    assert all(r.data[:4] == b"\x89PNG" for r in loaded)  # still encoded: SkipDecoding, no re-encode


@pytest.mark.slow
def test_mnist_build_keeps_splits_labels_and_one_channel(tfds_dir, tmp_path):
    labels = mock_labels(tfds_dir, "mnist")
    with mocked(tfds_dir):
        rc = run_main(
            build_tfrecords.main,
            "--tfds_name=mnist",
            f"--tfds_data_dir={tfds_dir}",
            f"--output_dir={tmp_path}",
            "--dataset_name=mnist_pad",
            "--image_size=36",
            *IN_PROCESS,
        )
    assert rc == 0
    out = tmp_path / "mnist_pad" / "1.0.0"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["examples_per_split"] == {"test": N, "train": N} and stats["channels"] == 1
    builder = tfds.builder_from_directory(str(out))
    assert builder.info.features["label"].names == [str(i) for i in range(10)]
    pixels = []
    for ex in tfds.as_numpy(builder.as_dataset(split="train")):
        assert ex["image"].shape == (36, 36, 1)
        pixels.append(ex["image"].astype(np.float64))
        index = int(ex["key"].decode().rsplit("/", 1)[1])
        assert ex["source"].decode() == f"tfds:mnist/train/{index}" and ex["label"] == labels[index]
    cs = stats["channel_stats"]  # of the pixels before JPEG: the decoded ones are within JPEG's error
    assert (cs["split"], cs["images"], cs["pixels"]) == ("train", N, N * 36 * 36) and len(cs["mean"]) == 1
    assert abs(cs["mean"][0] - np.mean(pixels)) < 1 and abs(cs["std"][0] - np.std(pixels)) < 1


@pytest.mark.slow
def test_cifar10_resplit_with_class_names_in_a_new_order(tfds_dir, tmp_path):
    names = tfds.builder("cifar10", data_dir=str(tfds_dir)).info.features["label"].names
    labels = {s: mock_labels(tfds_dir, "cifar10", s) for s in ("train", "test")}
    order = list(reversed(names))
    with mocked(tfds_dir):
        rc = run_main(
            build_tfrecords.main,
            "--tfds_name=cifar10",
            f"--tfds_data_dir={tfds_dir}",
            f"--output_dir={tmp_path}",
            "--dataset_name=c10",
            "--image_size=32",
            "--resize=stretch",
            "--splits=train:0.5,validation:0.5",
            f"--class_names={','.join(order)}",
            "--max_bad_fraction=0",
            *IN_PROCESS,
        )
    assert rc == 0
    builder = tfds.builder_from_directory(str(tmp_path / "c10" / "1.0.0"))
    assert builder.info.features["label"].names == order
    seen = 0
    for split in ("train", "validation"):
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            _, in_split, index = ex["key"].decode().split("/")
            assert order[ex["label"]] == names[labels[in_split][int(index)]]
            assert ex["image"].shape == (32, 32, 3)
            seen += 1
    assert seen == 2 * N


@pytest.mark.parametrize(
    "argv,mock,message",
    [
        (["--tfds_name=mnistt"], False, "no such TFDS dataset; did you mean mnist"),
        (["--tfds_name=mnist", "--tfds_data_dir={empty}"], False, "is not prepared in"),
        (
            ["--tfds_name=mnist", "--tfds_data_dir={tfds}", "--class_names=0,1,2"],
            True,
            "in the input but not in --class_names: ['3', '4', '5', '6', '7', '8', '9']",
        ),
        (["--tfds_name=mnist", "--input_dir={tfds}"], False, "exactly one of --input_dir"),
        (["--tfds_data_dir={tfds}", "--input_dir={tfds}"], False, "--tfds_data_dir="),
    ],
)
def test_tfds_errors_are_one_line_before_any_work(tfds_dir, tmp_path, capsys, argv, mock, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    argv = [a.format(empty=empty, tfds=tfds_dir) for a in argv]
    with mocked(tfds_dir) if mock else contextlib.nullcontext():
        rc = run_main(build_tfrecords.main, *argv, f"--output_dir={out}")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    if message == "is not prepared in":
        assert "never downloads" in err
    assert not out.exists()


def test_the_worker_read_step_pickles():
    from apache_beam.internal import pickler

    source = TfdsSource("mnist", "/x", TfdsInfo("mnist", ["0", "1"], 1, "image", "label", {"train": 2}))
    assert pickler.loads(pickler.dumps(source)) == source


def write_real_dataset(data_dir, name="mnist", sizes=(("train", (7, 6)), ("test", (4,))), broken=0):
    """A genuinely prepared dataset (real shards and metadata, random pixels), no mock involved; the
    first `broken` train examples hold bytes that are no image.

    Returns {split: [(image, label), ...]} in on-disk order.
    """
    builder = tfds.builder(name, data_dir=str(data_dir))
    feats = builder.info.features
    builder.data_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    written, infos = {}, []
    for split, shard_lengths in sizes:
        template = tfds.core.naming.ShardedFileTemplate(
            data_dir=builder.data_dir, dataset_name=name, split=split, filetype_suffix="tfrecord"
        )
        written[split] = []
        for i, n in enumerate(shard_lengths):
            path = template.sharded_filepath(shard_index=i, num_shards=len(shard_lengths))
            with tf.io.TFRecordWriter(str(path)) as w:
                for _ in range(n):
                    image = rng.integers(0, 255, feats["image"].shape, np.uint8)
                    label = int(rng.integers(0, 10))
                    example = feats.serialize_example({"image": image, "label": label})
                    if split == "train" and len(written[split]) < broken:
                        ex = tf.train.Example.FromString(example)
                        ex.features.feature["image"].bytes_list.value[0] = b"not an image"
                        example = ex.SerializeToString()
                    w.write(example)
                    written[split].append((image, label))
        infos.append(
            tfds.core.SplitInfo(name=split, shard_lengths=list(shard_lengths), num_bytes=0, filename_template=template)
        )
    builder.info.set_splits(tfds.core.SplitDict(infos))
    builder.info.write_to_directory(builder.data_dir)
    return written


def test_worker_reads_ranges_across_real_shard_files(tmp_path):
    written = write_real_dataset(tmp_path)
    records, info, _ = read_tfds("mnist", str(tmp_path))
    source = TfdsSource("mnist", str(tmp_path), info, chunk=5)  # ranges cross the train shard boundary (7)
    loaded = {r.key: r for task in source.tasks(records) for r in source.read(task)}
    assert len(loaded) == len(records) == 17
    for split, examples in written.items():
        for i, (image, label) in enumerate(examples):
            r = loaded[f"mnist/{split}/{i}"]
            assert r.label == str(label) and r.split == split
            assert np.array_equal(tf.io.decode_png(r.data).numpy(), image)


@pytest.mark.slow
def test_cli_on_real_tfds_files_with_the_default_multiprocess_runner_says_what_it_does(tmp_path):
    """TFDS starts TensorFlow on the driver and in every worker: its C++ banners, TFDS's INFO lines
    and Beam's "Discarding unparseable args" used to bury the job's own lines. An unknown flag
    still gets Beam's one "did you mean" line, a bad image the closing warning."""
    write_real_dataset(tmp_path / "tfds", broken=1)
    proc = run_cli(
        "pipelines.build_tfrecords",
        "--tfds_name=mnist",
        f"--tfds_data_dir={tmp_path / 'tfds'}",
        f"--output_dir={tmp_path / 'out'}",
        "--dataset_name=m",
        "--image_size=32",
        "--direct_num_workrs=2",
    )
    err = proc.stderr
    noises = ("absl::InitializeLog", "cpu_feature_guard", "cuInit", "Discarding unparseable", "Load dataset info from")
    for noise in noises:  # the last: TFDS's INFO line (dataset_info.py)
        assert noise not in err, err
    lines = err.splitlines()
    for line in lines:  # Python log lines only (no C++ ones), in the quiet console's short format
        assert re.match(r"\d\d:\d\d:\d\d (warning: |error: )?\S", line), line
    # INFO lines only of this job: its six step lines, no library's
    info = [line.split(" ", 1)[1] for line in lines if not re.match(r"\S+ (warning|error): ", line)]
    assert [line.split(":")[0] for line in info] == ["inputs", "read tasks", "job", "job", "merged", "published"], err
    final = tmp_path / "out" / "m" / "1.0.0"
    for expected in (
        "inputs: 17 listed from tfds mnist",
        "read tasks: 2 written (17 records)",
        "job: started on DirectRunner (multi_processing, ",
        "job: finished in",
        "merged: 2 shard(s)",
        f"published: {final}",
        "Unparseable argument: --direct_num_workrs=2. Did you mean '--direct_num_workers'",
        f"1 of 17 inputs rejected (see {final}/dead_letter.jsonl): corrupt 1",
    ):
        assert expected in err, (expected, err)
    assert f"-> {final}" in proc.stdout
    stats = json.loads((final / "stats.json").read_text())
    assert stats["examples_per_split"] == {"test": 4, "train": 12} and stats["rejected_per_reason"] == {"corrupt": 1}
