import numpy as np
import pytest
import tensorflow as tf

from pipelines import image_ops, schema


def test_serialized_examples_parse_with_the_raw_spec():
    feats = schema.features(["a", "b"])
    image = image_ops.encode(tf.zeros((8, 8, 3), tf.uint8).numpy(), "jpeg")
    data = schema.serialize(feats, image=image, label=1, key="b/1", parent_key="b/0", source="http://x/1.jpg")
    parsed = schema.parse(tf.constant(data))
    assert parsed["image"].numpy() == image
    assert int(parsed["label"]) == 1 and parsed["key"].numpy() == b"b/1"
    assert parsed["parent_key"].numpy() == b"b/0" and parsed["source"].numpy() == b"http://x/1.jpg"
    decoded = feats.deserialize_example(data)
    assert decoded["image"].shape == (8, 8, 3) and int(decoded["label"]) == 1


def test_shard_names_follow_the_tfds_template():
    assert schema.shard_name("flowers", "train", 3, 12) == "flowers-train.tfrecord-00003-of-00012"


@pytest.mark.parametrize("layout", sorted(schema.LAYOUTS))
def test_every_layout_round_trips_through_its_parse_spec(layout):
    lay = schema.get_layout(layout)
    feats = schema.features(["a", "b", "c"], channels=1, layout=layout)
    image = image_ops.encode(np.full((6, 5, 1), 9, np.uint8), "png")
    data = schema.serialize(
        feats,
        image=image,
        label=2,
        key="c/7",
        parent_key="c/6",
        source="s",
        class_name="c",
        height=6,
        width=5,
        fmt="png",
    )
    assert data == schema.serialize(
        feats,
        image=image,
        label=2,
        key="c/7",
        parent_key="c/6",
        source="s",
        class_name="c",
        height=6,
        width=5,
        fmt="png",
    )
    parsed = schema.parse(tf.constant(data), layout)
    assert parsed[lay.image_key].numpy() == image and int(parsed[lay.label_key]) == 2
    assert parsed[lay.key_key].numpy() == b"c/7"
    assert tf.io.decode_png(parsed[lay.image_key]).shape == (6, 5, 1)


def test_model_garden_keys_are_exactly_model_gardens():
    feats = schema.features(["a", "b"], layout="model_garden")
    data = schema.serialize(feats, image=b"\xff\xd8jpeg", label=1, key="b/1", class_name="b", height=3, width=4)
    keys = set(tf.train.Example.FromString(data).features.feature)
    assert keys == {
        "image/encoded",
        "image/format",
        "image/height",
        "image/width",
        "image/class/label",
        "image/class/text",
        "image/source_id",
        "image/parent_id",
        "image/source",
    }


def test_unknown_layout_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known: tfds, model_garden"):
        schema.get_layout("coco")
    assert schema.layout_of(str(tmp_path)) == "tfds"
    (tmp_path / "stats.json").write_text('{"layout": "model_garden"}')
    assert schema.layout_of(str(tmp_path)) == "model_garden"
