import subprocess
import sys

import pytest
import tensorflow as tf

from pipelines import shards


def test_shards_are_the_bytes_tensorflow_writes_and_read_back_in_key_order(tmp_path):
    records = [(f"k{i:03d}", bytes([i % 256]) * (i * 37 % 500)) for i in range(50)][::-1]
    ours = str(tmp_path / "ours.tfrecord")
    count, size = shards.write_shard(ours, records)
    reference = str(tmp_path / "tf.tfrecord")
    with tf.io.TFRecordWriter(reference) as w:
        for _, data in sorted(records):
            w.write(data)
    assert (count, size) == (50, len(open(reference, "rb").read()))
    assert open(ours, "rb").read() == open(reference, "rb").read()
    assert list(tmp_path.iterdir()) and not [p for p in tmp_path.iterdir() if "incomplete" in p.name]


def test_gzip_shards_read_with_tensorflow_and_overwrite_in_place(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    shards.write_shard(path, [("a", b"old")], "GZIP")
    records = [("b", b"second"), ("a", b"first")]
    count, size = shards.write_shard(path, records, "GZIP")
    got = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]
    assert got == [b"first", b"second"] and count == 2 and size == (tmp_path / "x.tfrecord").stat().st_size


def test_worker_side_modules_do_not_import_tensorflow():
    # Beam workers import these to run the build's steps; TensorFlow would cost seconds per worker.
    code = (
        "import sys; import pipelines.build, pipelines.transforms, pipelines.finish, pipelines.shards, "
        "pipelines.schema, pipelines.image_ops, pipelines.channel_stats; "
        "from pipelines.readers import Record; "
        "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_read_framed_returns_records_in_the_order_asked_and_names_a_bad_range(tmp_path):
    path = tmp_path / "part"
    records = [bytes([i]) * (i * 11 + 1) for i in range(8)]
    framed = [shards.tfrecord_frame(r) for r in records]
    path.write_bytes(b"".join(framed))
    offsets = [sum(len(f) for f in framed[:i]) for i in range(8)]
    want = [5, 0, 1, 2, 7, 3]  # a run of adjacent ranges (0, 1, 2) is read at once
    got = shards.read_framed(str(path), [(offsets[i], len(framed[i])) for i in want])
    assert got == [framed[i] for i in want]
    with pytest.raises(IOError, match=f"{path}.*offset {offsets[3] + 1}"):
        shards.read_framed(str(path), [(offsets[3] + 1, len(framed[3]))])
    with pytest.raises(IOError, match="offset"):  # past the end of a truncated part file
        shards.read_framed(str(path), [(offsets[7], len(framed[7]) + 5)])


def test_write_framed_equals_write_shard(tmp_path):
    records = [("b", b"two"), ("a", b"one")]
    shards.write_shard(str(tmp_path / "a"), records)
    shards.write_framed(str(tmp_path / "b"), [shards.tfrecord_frame(d) for _, d in sorted(records)])
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_read_framed_rejects_a_range_shorter_than_a_record_frame(tmp_path):
    path = tmp_path / "part"
    path.write_bytes(shards.tfrecord_frame(b"abc"))
    with pytest.raises(IOError, match="no whole TFRecord of 5 bytes at offset 0"):
        shards.read_framed(str(path), [(0, 5)])
