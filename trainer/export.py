"""Exports a trained model: `model.keras` and a SavedModel with the preprocessing inside.

The SavedModel under <run_dir>/export/ has two signatures, both returning class
probabilities (and the class names):
  serving_default / serve_bytes:  encoded image bytes (JPEG, PNG, GIF, BMP), shape [batch]
  serve_uint8:                    uint8 images [batch, height, width, channels], any size
Each resizes (aspect kept, padded, as the Beam job and the trainer do) and normalises
with the run's mean/std before the network, so callers need nothing but the image.

An export is published whole or not at all: `model.keras` and the SavedModel are written into
<run_dir>/.incomplete-export/, moved into place (locally a rename of the folder; on gs:// a
copy and a delete per file), and `export/export_complete.json` (the files, with their sizes)
is written last. A reader checks that marker (`check_complete`): a trainer killed while
exporting leaves an export without it, and the same training command exports again.
"""

from __future__ import annotations

import os

from storage import fs

# keras, TensorFlow and the zoo are imported where a model is exported: a reader of the layout
# (trainer.predict checking the marker) says what is wrong before TensorFlow loads.

PREPROCESSING_FILE = "preprocessing.json"
EXPORT_DIR = "export"
COMPLETE_MARKER = "export_complete.json"  # written last into export/: the export is whole
INCOMPLETE_DIR = ".incomplete-export"  # next to export/: where an export is written before it is moved
REDO = (
    "run the same `python -m trainer.train` command again: it resumes at the last checkpoint and exports "
    "again (without --skip_export)"
)


def preprocessing_info(image_size: int, channels: int, mean, std, class_names) -> dict:
    return {
        "image_size": image_size,
        "channels": channels,
        "mean": list(mean),
        "std": list(std),
        "class_names": list(class_names),
        "resize": "pad",
    }


def export(model, run_dir: str, prep: dict) -> tuple[str, str]:
    """Writes <run_dir>/model.keras and <run_dir>/export/ (whole or not at all); returns their paths."""
    from trainer.models import without_aux_heads

    model = without_aux_heads(model)
    staging = fs.join(run_dir, INCOMPLETE_DIR)
    _remove(staging)  # what a killed export left
    fs.makedirs(staging)
    keras_path = fs.join(run_dir, "model.keras")
    model.save(fs.join(staging, "model.keras"))  # Keras and TensorFlow write through TF's file layer
    fs.write_json(fs.join(run_dir, PREPROCESSING_FILE), prep)
    _saved_model(model, prep).write_out(fs.join(staging, EXPORT_DIR), verbose=False)
    export_dir = fs.join(run_dir, EXPORT_DIR)
    publish(staging, run_dir)
    return keras_path, export_dir


def _saved_model(model, prep: dict):
    """The SavedModel's `keras.export.ExportArchive`: raw bytes or uint8 images in, probabilities
    and class names out."""
    import keras
    import tensorflow as tf

    from trainer import data as data_lib

    size, channels = prep["image_size"], prep["channels"]
    mean, std = prep["mean"], prep["std"]
    names = tf.constant(prep["class_names"])

    def from_uint8(images):
        images = tf.map_fn(lambda img: data_lib.resize_uint8(img, size), images, fn_output_signature=tf.uint8)
        x = data_lib.normalize(images, mean, std)
        probs = tf.nn.softmax(tf.cast(model(x, training=False), tf.float32), axis=-1)
        return {
            "probabilities": probs,
            "class_names": tf.broadcast_to(names, [tf.shape(probs)[0], len(prep["class_names"])]),
        }

    def decode_one(b):
        return data_lib.decode_resize(b, size, channels)

    archive = keras.export.ExportArchive()
    archive.track(model)
    serve_bytes = tf.function(
        lambda images: from_uint8(tf.map_fn(decode_one, images, fn_output_signature=tf.uint8)),
        input_signature=[tf.TensorSpec([None], tf.string, name="images")],
    )
    serve_uint8 = tf.function(
        from_uint8, input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")]
    )
    archive.add_endpoint("serve_bytes", serve_bytes)
    archive.add_endpoint("serve_uint8", serve_uint8)
    archive.add_endpoint("serving_default", serve_bytes)
    return archive


def publish(staging: str, run_dir: str) -> None:
    """Moves a finished export from `staging` into <run_dir>/ and marks it complete.

    The old export loses its marker first, so from here until the new marker is written a reader
    sees an incomplete export, never a mix of two presented as whole.
    """
    final = fs.join(run_dir, EXPORT_DIR)
    fs.delete(fs.join(final, COMPLETE_MARKER))
    fs.rmtree(final)
    _move_folder(fs.join(staging, EXPORT_DIR), final)
    fs.rename(fs.join(staging, "model.keras"), fs.join(run_dir, "model.keras"))
    files = {rel: fs.size(fs.join(final, rel)) for rel in fs.list_files(final)}
    fs.write_json(fs.join(final, COMPLETE_MARKER), {"files": files})
    _remove(staging)


def _remove(folder: str) -> None:
    """Deletes a folder TensorFlow wrote into, with the empty "name/" objects its GCS client
    leaves on a bucket for each folder (they hold no file: the storage layer does not list them)."""
    import tensorflow as tf

    fs.rmtree(folder)
    if not fs.is_local(folder) and tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)


def _move_folder(src: str, dst: str) -> None:
    """A local folder: one atomic rename. A bucket has no folders: each file, copied then deleted."""
    if fs.is_local(src) and fs.is_local(dst):
        os.replace(src, dst)
        return
    for rel in fs.list_files(src):
        fs.rename(fs.join(src, rel), fs.join(dst, rel))


def check_complete(run_dir: str) -> str:
    """The run's export folder if it is whole (its marker is there and every file it lists);
    ValueError saying what is missing and how to export again otherwise."""
    export_dir = fs.join(run_dir, EXPORT_DIR)
    marker = fs.join(export_dir, COMPLETE_MARKER)
    if not fs.exists(marker):
        if fs.isdir(export_dir) or fs.isdir(fs.join(run_dir, INCOMPLETE_DIR)):
            raise ValueError(
                f"the export in {run_dir} is incomplete (no {EXPORT_DIR}/{COMPLETE_MARKER}: the trainer "
                f"was stopped while exporting, or exported before the marker existed): {REDO}"
            )
        raise ValueError(f"{export_dir} not found: train first (python -m trainer.train), without --skip_export")
    present = set(fs.list_files(export_dir))
    missing = sorted(set(fs.read_json(marker)["files"]) - present)
    if missing:
        raise ValueError(
            f"the export in {run_dir} is incomplete ({len(missing)} of its files are missing, e.g. "
            f"{missing[0]}): {REDO}"
        )
    return export_dir
