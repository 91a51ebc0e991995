"""Exports a trained model: `model.keras` and a SavedModel with the preprocessing inside.

The SavedModel under <run_dir>/export/ has two signatures, both returning class
probabilities (and the class names):
  serving_default / serve_bytes:  encoded image bytes (JPEG, PNG, GIF, BMP), shape [batch]
  serve_uint8:                    uint8 images [batch, height, width, channels], any size
Each resizes (aspect kept, padded, as the Beam job and the trainer do) and normalises
with the run's mean/std before the network, so callers need nothing but the image.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from storage import fs
from trainer import data as data_lib
from trainer.models import without_aux_heads

PREPROCESSING_FILE = "preprocessing.json"


def preprocessing_info(image_size: int, channels: int, mean, std, class_names) -> dict:
    return {"image_size": image_size, "channels": channels, "mean": list(mean), "std": list(std),
            "class_names": list(class_names), "resize": "pad"}


def export(model: keras.Model, run_dir: str, prep: dict) -> tuple[str, str]:
    """Writes <run_dir>/model.keras and <run_dir>/export/; returns their paths."""
    model = without_aux_heads(model)
    keras_path = fs.join(run_dir, "model.keras")
    model.save(keras_path)  # Keras and TensorFlow write model.keras and export/ through TF's file layer
    fs.write_json(fs.join(run_dir, PREPROCESSING_FILE), prep)
    size, channels = prep["image_size"], prep["channels"]
    mean, std = prep["mean"], prep["std"]
    names = tf.constant(prep["class_names"])

    def from_uint8(images):
        images = tf.map_fn(lambda img: data_lib.resize_uint8(img, size), images, fn_output_signature=tf.uint8)
        x = data_lib.normalize(images, mean, std)
        probs = tf.nn.softmax(tf.cast(model(x, training=False), tf.float32), axis=-1)
        return {"probabilities": probs, "class_names": tf.broadcast_to(names, [tf.shape(probs)[0], len(prep["class_names"])])}

    def decode_one(b):
        return data_lib.decode_resize(b, size, channels)

    archive = keras.export.ExportArchive()
    archive.track(model)
    serve_bytes = tf.function(lambda images: from_uint8(tf.map_fn(decode_one, images, fn_output_signature=tf.uint8)),
                              input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    serve_uint8 = tf.function(from_uint8, input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8,
                                                                         name="images")])
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.add_endpoint("serve_uint8", serve_uint8)
    archive.add_endpoint("serving_default", serve_bytes)
    export_dir = fs.join(run_dir, "export")
    archive.write_out(export_dir, verbose=False)
    return keras_path, export_dir
