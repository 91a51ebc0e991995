import subprocess
import sys

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
    code = ("import sys; import pipelines.build, pipelines.shards, pipelines.schema, pipelines.image_ops; "
            "from pipelines.readers import Record; "
            "print(sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith('tensorflow.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
