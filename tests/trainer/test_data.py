import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import build_tfrecords
from trainer import data as data_lib


@pytest.fixture(scope="module")
def info(tfrecords_dir):
    return data_lib.open_dataset(str(tfrecords_dir))


def batches(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def train_stream(info, **kw):
    args = dict(batch_size=4, image_size=32, seed=3, flip=True, crop_pad=4)
    return data_lib.make_train_dataset(info, "train", **{**args, **kw})


def test_dataset_info_comes_from_the_beam_metadata(info, tfrecords_dir):
    assert info.class_names == ["daisy", "rose", "tulip"]
    assert info.channels == 3 and set(info.split_sizes) == {"train", "validation", "test"}
    assert info.image_shape == (32, 32, 3) and info.encoding == "jpeg"  # static: the Beam job resized all


def test_train_stream_delivers_uint8_pixels(info):
    ((x, y),) = batches(train_stream(info), 1)
    assert x.dtype == np.uint8 and x.shape == (4, 32, 32, 3) and y.shape == (4,)


def test_dataset_decoder_follows_the_metadata_and_matches_the_generic_decoder(info):
    encoded = next(iter(data_lib.raw_split(info, "train", shuffle_seed=None)))[0]
    for size in (32, 40):  # 32: decode only (static shape); 40: padded like the generic path
        fast = data_lib.dataset_decoder(info, size)(encoded).numpy()
        generic = data_lib.decode_resize(encoded, size, 3).numpy()
        assert fast.shape == (size, size, 3)
        np.testing.assert_array_equal(fast, generic)
    unknown = data_lib.DatasetInfo(**{**info.__dict__, "image_shape": (None, None, 3), "encoding": None})
    np.testing.assert_array_equal(
        data_lib.dataset_decoder(unknown, 40)(encoded).numpy(), data_lib.decode_resize(encoded, 40, 3).numpy()
    )


def test_cached_stream_equals_the_uncached_one(info):
    n = info.split_sizes["train"] // 4 + 3  # past the first pass: the second pass reads the cache
    for (x1, y1), (x2, y2) in zip(batches(train_stream(info), n), batches(train_stream(info, cache=True), n)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    resumed = batches(train_stream(info, cache=True, start_batch=n - 2), 2)
    np.testing.assert_array_equal(resumed[-1][0], batches(train_stream(info), n)[-1][0])


def test_train_stream_is_a_function_of_the_seed_and_resumes_exactly(info):
    full = batches(train_stream(info), 12)
    again = batches(train_stream(info), 12)
    resumed = batches(train_stream(info, start_batch=7), 5)
    for (x1, y1), (x2, y2) in zip(full, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    for (x1, y1), (x2, y2) in zip(full[7:], resumed):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = batches(train_stream(info, seed=4), 1)
    assert not np.array_equal(full[0][0], other[0][0])


def test_passes_reshuffle_and_cover_every_example(info):
    n = info.split_sizes["train"]
    stream = data_lib.make_train_dataset(info, "train", batch_size=1, image_size=32, seed=0)
    labels = np.array([y.numpy()[0] for _, y in stream.take(2 * n)])
    assert sorted(labels[:n]) == sorted(labels[n:])


def test_eval_dataset_is_ordered_complete_and_padded_to_full_batches(info):
    n = info.split_sizes["validation"]
    batch = 4 if n % 4 else 5  # a partial last batch
    assert n % batch
    ds = data_lib.make_eval_dataset(info, "validation", batch_size=batch, image_size=32)
    batches = [[t.numpy() for t in b] for b in ds]
    assert all(x.shape == (batch, 32, 32, 3) and y.shape == (batch,) for x, y, _ in batches)
    valid = np.concatenate([v for _, _, v in batches])
    assert valid.sum() == n and valid[:n].all()  # padding only at the end
    assert not batches[-1][0][~batches[-1][2]].any()  # zero images in the padding
    xs = np.concatenate([x for x, _, _ in batches])[valid]
    ordered = np.stack(
        [
            data_lib.decode_resize(img, 32, 3).numpy()
            for img, _ in data_lib.raw_split(info, "validation", shuffle_seed=None)
        ]
    )
    np.testing.assert_array_equal(xs, ordered)
    cached = data_lib.make_eval_dataset(info, "validation", batch_size=batch, image_size=32, cache=True)
    for _ in range(2):  # the second pass comes from memory
        np.testing.assert_array_equal(
            np.concatenate([x.numpy() for x, _, _ in cached]), np.concatenate([x for x, _, _ in batches])
        )


def test_normalize_is_per_channel_for_images_and_batches():
    x = tf.constant(np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3) % 256, tf.uint8)
    mean, std = [10.0, 20.0, 30.0], [2.0, 4.0, 5.0]
    expected = (x.numpy().astype(np.float32) - mean) / std
    np.testing.assert_allclose(data_lib.normalize(x, mean, std).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(data_lib.normalize(x[0], mean, std).numpy(), expected[0], rtol=1e-6)


def test_decode_resize_pads_other_sizes():
    img = tf.io.encode_png(tf.fill([10, 20, 3], tf.constant(200, tf.uint8)))
    out = data_lib.decode_resize(img, 20, 3).numpy()
    assert out.shape == (20, 20, 3) and (out[:5] == 0).all() and (out[5:15] == 200).all()


def test_open_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset_info.json"):
        data_lib.open_dataset(str(tmp_path))
    with pytest.raises(ValueError, match="exactly one"):
        data_lib.open_dataset()


def test_mixup_blends_images_and_labels_with_the_same_weight(info):
    ((x, y),) = batches(train_stream(info, crop_pad=0, flip=False), 1)
    ((mx, my),) = batches(train_stream(info, crop_pad=0, flip=False, mixup_alpha=0.4), 1)
    onehot, x_rev, oh_rev = np.eye(3)[y], x[::-1], np.eye(3)[y][::-1]
    rows = [i for i in range(len(y)) if y[i] != y[::-1][i]]
    if not rows:
        pytest.skip("batch pairs share labels")  # cannot happen with the fixed seed; kept honest
    i = rows[0]
    lam = my[i, y[i]]
    np.testing.assert_allclose(my, lam * onehot + (1 - lam) * oh_rev, atol=1e-6)
    np.testing.assert_allclose(mx, lam * x + (1 - lam) * x_rev, atol=0.02)  # 0-255 pixels in float32


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area(info):
    ((x, y),) = batches(train_stream(info, crop_pad=0, flip=False), 1)
    ((mx, my),) = batches(train_stream(info, crop_pad=0, flip=False, cutmix_alpha=1.0), 1)
    assert (np.isclose(mx, x).all(-1) | np.isclose(mx, x[::-1]).all(-1)).all()
    area = np.isclose(mx[0], x[::-1][0]).all(-1).mean()
    expected = (1 - area) * np.eye(3)[y] + area * np.eye(3)[y][::-1]
    np.testing.assert_allclose(my, expected, atol=2e-2)
    assert np.allclose(my.sum(1), 1)


def test_mixed_streams_are_deterministic(info):
    a = batches(train_stream(info, mixup_alpha=0.4, cutmix_alpha=1.0), 3)
    b = batches(train_stream(info, mixup_alpha=0.4, cutmix_alpha=1.0), 3)
    for (x1, y1), (x2, y2) in zip(a, b):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_other_layouts_are_refused_with_the_fix(tmp_path):
    (tmp_path / "stats.json").write_text('{"layout": "model_garden"}')
    with pytest.raises(ValueError, match="'model_garden' example layout"):
        data_lib.open_dataset(str(tmp_path))


def test_dataset_identity_ignores_paths_and_names_the_first_difference(info, tfrecords_dir, tmp_path):
    import shutil

    same = data_lib.dataset_identity(data_lib.open_dataset(str(shutil.copytree(tfrecords_dir, tmp_path / "copy"))))
    ident = data_lib.dataset_identity(info)
    assert same == ident and data_lib.dataset_change(ident, same) is None  # a copy elsewhere: the same dataset
    assert ident["class_names"] == ["daisy", "rose", "tulip"] and len(ident["fingerprint"]) == 64
    permuted = {**ident, "class_names": ["daisy", "tulip", "rose"]}
    assert data_lib.dataset_change(ident, permuted) == (
        "class 1 is 'rose' in the run and 'tulip' in the data (2 of 3 label positions differ)"
    )
    assert data_lib.dataset_change({"class_names": ident["class_names"]}, ident) is None  # a run before dataset.json
    assert "version is '1.0.0', the data's is '2.0.0'" in data_lib.dataset_change(ident, {**ident, "version": "2.0.0"})
    assert "split sizes" in data_lib.dataset_change(ident, {**ident, "split_sizes": {"train": 1}})
    assert "fingerprint" in data_lib.dataset_change(ident, {**ident, "fingerprint": "0" * 64})


@pytest.fixture(scope="module")
def png_dir(crawled_dir, tmp_path_factory):
    """The small crawl built losslessly (PNG): decoded pixels are the pixels the job summed."""
    out = tmp_path_factory.mktemp("tfrecords_png")
    return build_tfrecords(
        crawled_dir, out, "png", "--encoding=png", "--augment_copies=1", "--direct_running_mode=in_memory"
    )


def _computed(info, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(data_lib, "channel_stats", lambda *_: None)
        return data_lib.normalization_constants("dataset", info, "train", 32)


def test_dataset_normalization_comes_from_the_beam_jobs_channel_stats_and_equals_a_pass(png_dir, monkeypatch):
    info = data_lib.open_dataset(str(png_dir))
    used = data_lib.normalization_constants("dataset", info, "train", 32)
    assert used.source == f"the dataset's channel_stats: {info.split_sizes['train']} train images"
    computed = _computed(info, monkeypatch)
    assert "computed from" in computed.source
    np.testing.assert_allclose(used.mean, computed.mean, rtol=1e-9)
    np.testing.assert_allclose(used.std, computed.std, rtol=1e-6)


def test_jpeg_channel_stats_are_on_the_trainers_scale(info, monkeypatch):
    """The job sums the pixels it encodes; JPEG's rounding moves the decoded ones a little (the mean
    within a pixel level) and smooths them (the std a few per cent lower at 32 px): same 0-255 scale."""
    used = data_lib.normalization_constants("dataset", info, "train", 32)
    assert "channel_stats" in used.source
    computed = _computed(info, monkeypatch)
    np.testing.assert_allclose(used.mean, computed.mean, atol=1.0)
    np.testing.assert_allclose(used.std, computed.std, rtol=0.05)


def test_a_dataset_without_channel_stats_is_computed_and_says_so(tfrecords_dir, tmp_path):
    import shutil

    from tests.conftest import strip_channel_stats

    data = tmp_path / "data"
    shutil.copytree(tfrecords_dir, data)
    strip_channel_stats(data)
    info = data_lib.open_dataset(str(data))
    assert data_lib.channel_stats(info, "train") is None
    used = data_lib.normalization_constants("dataset", info, "train", 32)
    assert used.source == f"computed from {info.split_sizes['train']} train images: the dataset has no channel_stats"
    assert len(used.mean) == 3 and all(0 < m < 255 for m in used.mean) and all(s > 0 for s in used.std)
    assert data_lib.normalization_constants("imagenet", info, "train", 32).source == "the imagenet constants"
