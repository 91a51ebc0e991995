"""`python -m pipelines.inspect_dataset`: summary, decoded examples, and every shard verified."""

import json
import shutil
import struct

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pipelines import build_tfrecords, inspect_dataset
from tests.pipelines.conftest import IN_PROCESS, make_image_folder, run_main

pytestmark = pytest.mark.slow

# Model Garden's classification decoder, as in official/vision/dataloaders/classification_input.py.
MODEL_GARDEN_KEYS = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/class/label": tf.io.FixedLenFeature((), tf.int64, default_value=-1),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("imgs"), per_class=8)


def _build(folder, out, name, *flags):
    rc = run_main(
        build_tfrecords.main,
        f"--input_dir={folder}",
        f"--output_dir={out}",
        f"--dataset_name={name}",
        "--image_size=20",
        "--num_shards=2",
        "--splits=train:0.5,test:0.5",
        *flags,
        *IN_PROCESS,
    )
    assert rc == 0
    return out / name / "1.0.0"


@pytest.fixture(scope="module")
def built(folder, tmp_path_factory):
    return _build(folder, tmp_path_factory.mktemp("out"), "pets")


def _copy(built, tmp_path):
    return shutil.copytree(built, tmp_path / "copy")


def _record_spans(path):
    """(start, end) byte offsets of every record's data in an uncompressed TFRecord file."""
    data, spans, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        spans.append((pos + 12, pos + 12 + length))
        pos += 12 + length + 4
    return spans


def _inspect(capsys, path, *flags):
    rc = run_main(inspect_dataset.main, str(path), *flags)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_prints_summary_examples_and_contact_sheet(built, capsys, tmp_path):
    rc, out, err = _inspect(capsys, built, "--examples=4", f"--contact_sheet={tmp_path / 'sheet.png'}")
    assert rc == 0, out + err
    assert "2 classes: cats, dogs" in out and "train: 8 examples in 2 shard(s) (cats=4, dogs=4)" in out
    assert out.count("  example ") == 4 and "OK: 4 shard(s), 16 records verified" in out
    assert (tmp_path / "sheet.png").read_bytes()[:4] == b"\x89PNG"


def test_names_the_file_and_record_of_a_flipped_byte(built, capsys, tmp_path):
    copy = _copy(built, tmp_path)
    shard = copy / "pets-train.tfrecord-00001-of-00002"
    spans = _record_spans(shard)
    start, end = spans[2]
    data = bytearray(shard.read_bytes())
    data[(start + end) // 2] ^= 0x10
    shard.write_bytes(bytes(data))
    rc, out, err = _inspect(capsys, copy)
    assert rc == 1
    assert "file pets-train.tfrecord-00001-of-00002, record 2: corrupt (corrupted record at" in err, err


def test_names_a_truncated_shard(built, capsys, tmp_path):
    copy = _copy(built, tmp_path)
    shard = copy / "pets-test.tfrecord-00000-of-00002"
    spans = _record_spans(shard)
    shard.write_bytes(shard.read_bytes()[: spans[-1][0] + 5])  # cut inside the last record
    rc, out, err = _inspect(capsys, copy)
    assert rc == 1 and f"file {shard.name}, record {len(spans) - 1}: corrupt (truncated record" in err, err
    # Cut exactly between two records: every record left is fine, the count gives it away.
    shard.write_bytes(shard.read_bytes()[: spans[-1][0] - 12])
    rc, out, err = _inspect(capsys, copy)
    assert rc == 1 and f"file {shard.name}: {len(spans) - 1} records, the metadata says {len(spans)}" in err, err


def test_names_a_missing_shard_and_stale_metadata(built, capsys, tmp_path):
    copy = _copy(built, tmp_path)
    (copy / "pets-train.tfrecord-00000-of-00002").unlink()
    stats = json.loads((copy / "stats.json").read_text())
    stats["shard_lengths_per_split"]["test"][0] += 1
    (copy / "stats.json").write_text(json.dumps(stats))
    rc, out, _ = _inspect(capsys, copy)
    assert rc == 1
    assert "BAD file pets-train.tfrecord-00000-of-00002: missing" in out and "stale metadata" in out


def test_model_garden_layout_round_trip_with_class_names_order(folder, tmp_path, capsys):
    out = _build(folder, tmp_path, "mg", "--layout=model_garden", "--class_names=dogs,cats")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["layout"] == "model_garden" and stats["class_names"] == ["dogs", "cats"]
    seen = 0
    for shard in out.glob("mg-*.tfrecord-*"):
        for record in tf.data.TFRecordDataset(str(shard)):
            ex = tf.io.parse_single_example(record, MODEL_GARDEN_KEYS)  # exactly what Model Garden parses
            image = tf.io.decode_jpeg(ex["image/encoded"], channels=3)
            full = tf.io.parse_single_example(
                record,
                {
                    **MODEL_GARDEN_KEYS,
                    **{
                        k: tf.io.FixedLenFeature((), t)
                        for k, t in (
                            ("image/format", tf.string),
                            ("image/height", tf.int64),
                            ("image/width", tf.int64),
                            ("image/source_id", tf.string),
                            ("image/class/text", tf.string),
                        )
                    },
                },
            )
            label, key = int(ex["image/class/label"]), full["image/source_id"].numpy().decode()
            assert ["dogs", "cats"][label] == key.split("/")[0] == full["image/class/text"].numpy().decode()
            assert image.shape == (20, 20, 3) and full["image/format"] == b"jpeg"
            assert int(full["image/height"]) == int(full["image/width"]) == 20
            seen += 1
    assert seen == 16
    builder = tfds.builder_from_directory(str(out))  # uncompressed: still TFDS-loadable, nested features
    assert builder.info.features["image"]["class"]["label"].names == ["dogs", "cats"]
    assert _inspect(capsys, out)[0] == 0


def test_gzip_model_garden_has_no_tfds_metadata_and_inspects(folder, tmp_path, capsys):
    out = _build(folder, tmp_path, "mgz", "--layout=model_garden", "--compression=gzip")
    assert not (out / "dataset_info.json").exists()
    shard = next(out.glob("mgz-train.tfrecord-*"))
    assert shard.read_bytes()[:2] == b"\x1f\x8b"
    records = list(tf.data.TFRecordDataset(str(shard), compression_type="GZIP"))
    assert int(tf.io.parse_single_example(records[0], MODEL_GARDEN_KEYS)["image/class/label"]) in (0, 1)
    rc, stdout, err = _inspect(capsys, out, "--examples=2")
    assert rc == 0 and "compression gzip" in stdout, stdout + err
    shard.write_bytes(shard.read_bytes()[:-30])
    rc, stdout, err = _inspect(capsys, out, "--examples=0")
    assert rc == 1 and f"file {shard.name}, record" in err, err
