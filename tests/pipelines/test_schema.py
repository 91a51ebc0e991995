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
