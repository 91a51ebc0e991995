"""The storage layer on a local disk, on gs:// (the GCS emulator) and on s3:// (moto): the same
results from every store, and one clear line for every store that cannot be used."""

from __future__ import annotations

import os
import socket

import pytest

from storage import StorageError, fs


def _tree(store):
    fs.write_bytes(fs.join(store, "a/1.jpg"), b"one")
    fs.write_bytes(fs.join(store, "a/2.jpg"), b"two")
    fs.write_bytes(fs.join(store, "b/c/3.jpg"), b"three")
    fs.write_bytes(fs.join(store, "top.json"), b"{}")


def test_files_round_trip_and_list_alike_on_every_store(any_store):
    store = any_store
    assert not fs.exists(fs.join(store, "top.json")) and fs.list_files(store) == []
    _tree(store)
    assert fs.read_bytes(fs.join(store, "b/c/3.jpg")) == b"three" and fs.size(fs.join(store, "a/2.jpg")) == 3
    assert fs.list_files(store) == ["a/1.jpg", "a/2.jpg", "b/c/3.jpg", "top.json"]
    assert fs.list_files(store, folders=True) == ["a/", "a/1.jpg", "a/2.jpg", "b/", "b/c/", "b/c/3.jpg", "top.json"]
    assert fs.listdir(store) == ["a", "b", "top.json"]
    assert fs.glob(fs.join(store, "a"), "*.jpg") == [fs.join(store, "a/1.jpg"), fs.join(store, "a/2.jpg")]
    assert fs.isdir(fs.join(store, "b")) and not fs.isdir(fs.join(store, "nothing"))
    fs.rename(fs.join(store, "a/1.jpg"), fs.join(store, "moved/1.jpg"))
    fs.copy(fs.join(store, "a/2.jpg"), fs.join(store, "moved/2.jpg"))
    assert not fs.exists(fs.join(store, "a/1.jpg"))
    assert [fs.read_bytes(fs.join(store, f"moved/{n}.jpg")) for n in (1, 2)] == [b"one", b"two"]
    fs.write_bytes(fs.join(store, "moved/2.jpg"), b"replaced")  # written whole over the old content
    assert fs.read_bytes(fs.join(store, "moved/2.jpg")) == b"replaced"
    fs.delete(fs.join(store, "top.json"))
    fs.delete(fs.join(store, "top.json"))  # a second delete is no error
    fs.rmtree(fs.join(store, "b"))
    assert fs.list_files(store) == ["a/2.jpg", "moved/1.jpg", "moved/2.jpg"]
    with pytest.raises(FileNotFoundError):
        fs.read_bytes(fs.join(store, "top.json"))


def test_copies_and_moves_across_stores(gcs, s3, tmp_path):
    fs.write_bytes(str(tmp_path / "f"), b"data")
    fs.copy(str(tmp_path / "f"), fs.join(gcs, "a"))
    fs.rename(fs.join(gcs, "a"), fs.join(s3, "b"))
    fs.copy(fs.join(s3, "b"), str(tmp_path / "back" / "f"))
    assert not fs.exists(fs.join(gcs, "a")) and fs.read_bytes(fs.join(s3, "b")) == b"data"
    assert (tmp_path / "back" / "f").read_bytes() == b"data"


def test_empty_files_and_streams(any_store):
    # Beam's S3 writer cannot complete an upload of zero parts; the layer writes those itself.
    fs.write_bytes(fs.join(store := any_store, "empty"), b"")
    assert fs.exists(fs.join(store, "empty")) and fs.read_bytes(fs.join(store, "empty")) == b""
    with fs.open_write(fs.join(store, "stream")) as f:
        for i in range(3):
            f.write(bytes([i]) * 1000)
    with fs.open_read(fs.join(store, "stream")) as f:
        f.seek(1500)
        assert f.read(1000) == b"\x01" * 500 + b"\x02" * 500


def test_an_atomic_write_that_fails_leaves_the_old_content(any_store):
    path = fs.join(any_store, "x.json")
    fs.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), fs.atomic_write(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("killed")
    assert fs.read_bytes(path) == b"old" and fs.list_files(any_store) == ["x.json"]  # no temp file left


def test_paths_tensorflow_cannot_open_are_refused_naming_the_way_out():
    with pytest.raises(
        StorageError, match=r"--run_dir=s3://b/run: TensorFlow 2.21 has no s3:// filesystem .* use gs://"
    ):
        fs.check("s3://b/run", "--run_dir", tensorflow=True)
    fs.check("s3://b/run", "--out_dir")  # the crawler and the Beam job write s3:// through Beam
    with pytest.raises(StorageError, match=r"--out_dir=ftp://h/x: no filesystem for ftp:// is installed"):
        fs.check("ftp://h/x", "--out_dir")
    fs.check("/local/path", "--run_dir", tensorflow=True)


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_preflight_names_a_missing_bucket(scheme, request):
    bucket = request.getfixturevalue("gcs" if scheme == "gs" else "s3")  # the store is up; this bucket is not
    fs.preflight(bucket, "--out_dir", write=True)
    leftovers = fs.list_files(bucket)
    assert leftovers == []  # the write check cleans up after itself
    with pytest.raises(StorageError) as e:
        fs.preflight(f"{scheme}://no-such-bucket/raw", "--out_dir", write=True)
    assert str(e.value) == f"--out_dir={scheme}://no-such-bucket/raw: bucket no-such-bucket does not exist"


def test_preflight_names_a_permission_error(gcs, gcs_server):
    fs.write_bytes(fs.join(gcs, "in/x.jpg"), b"x")
    gcs_server.deny(fs.path_bucket(gcs))
    with pytest.raises(
        StorageError,
        match=r"^--input_dir=gs://\S+/in: cannot list: permission denied on bucket "
        r"\S+ \(403\)",
    ) as e:
        fs.preflight(fs.join(gcs, "in"), "--input_dir")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_preflight_gives_up_on_an_unreachable_store_naming_the_cause(scheme, request, monkeypatch):
    bucket = request.getfixturevalue("gcs" if scheme == "gs" else "s3")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST" if scheme == "gs" else "AWS_ENDPOINT_URL", closed)
    monkeypatch.setenv(fs.TIMEOUT_ENV, "3")
    with pytest.raises(StorageError) as e:
        fs.preflight(fs.join(bucket, "raw"), "--out_dir", write=True)
    message = str(e.value)
    assert message.startswith(f"--out_dir={bucket}/raw: cannot reach the storage service: no answer in ")
    assert "Connection refused" in message or "Could not connect" in message, message


def test_local_paths_need_no_preflight(tmp_path):
    fs.preflight(str(tmp_path / "not" / "there"), "--out_dir", write=True)
    assert not os.path.exists(tmp_path / "not")
