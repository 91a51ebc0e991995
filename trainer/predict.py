"""Predicts the classes of image files with a trained run's exported model.

    python -m trainer.predict --run_dir=workspace/runs/demo photo1.jpg photo2.png
    python -m trainer.predict --run_dir=workspace/runs/demo --top_k=3 some/folder/

Loads <run_dir>/export/ (the SavedModel with the preprocessing inside: raw image bytes in,
probabilities out) once its completion marker says it is whole (an export the trainer did not
finish is one `error:` line, exit 2), and prints the top-k classes of each image, or JSON
lines with --json.
--run_dir may be local or gs:// (TensorFlow loads it); images and folders local, gs:// or s3://.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

import cli
from pipelines import exit_gc
from storage import StorageError, fs
from trainer import export as export_lib

_RUN_DIR = flags.DEFINE_string(
    "run_dir", None, "A run directory written by trainer.train (with export/), local or gs://."
)
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes to print per image.", lower_bound=1)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object per image.")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Images per model call.", lower_bound=1)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def image_paths(args: list[str]) -> list[str]:
    """Files as given; folders expanded (sorted, recursively) to the images they hold."""
    out = []
    for a in args:
        fs.preflight(a)
        if fs.isdir(a):
            out += [fs.join(a, rel) for rel in fs.list_files(a) if rel.lower().endswith(IMAGE_EXTENSIONS)]
        elif fs.exists(a):
            out.append(a)
        else:
            raise ValueError(f"{a}: no such file or folder")
    return out


class Predictor:
    """The exported model of a run; `predict(list of encoded images) -> probabilities`."""

    def __init__(self, run_dir: str):
        fs.check(run_dir, "--run_dir", tensorflow=True)
        fs.preflight(run_dir, "--run_dir")
        export_dir = export_lib.check_complete(run_dir)  # before TensorFlow: a killed export is one line
        import tensorflow as tf

        self._tf = tf
        try:
            self._model = tf.saved_model.load(export_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:  # whole when written, damaged since
            reason = str(getattr(e, "message", e)).strip().splitlines()[0]
            raise ValueError(f"{export_dir} cannot be loaded ({type(e).__name__}: {reason}): {export_lib.REDO}") from e
        self.class_names = [
            line.strip() for line in fs.read_text(fs.join(run_dir, "labels.txt")).splitlines() if line.strip()
        ]

    def predict(self, encoded: list[bytes]):
        out = self._model.serve_bytes(self._tf.constant(encoded))
        return out["probabilities"].numpy()


def main(argv):
    if not _RUN_DIR.value:
        print("error: --run_dir is required", file=sys.stderr)
        return 2
    try:
        paths = image_paths(argv[1:])
        if not paths:
            raise ValueError("no images given: pass image files or folders after the flags")
        predictor = Predictor(_RUN_DIR.value)
    except (ValueError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    k = min(_TOP_K.value, len(predictor.class_names))
    failed = 0
    for start in range(0, len(paths), _BATCH.value):
        batch = paths[start : start + _BATCH.value]
        try:
            datas = [fs.read_bytes(p) for p in batch]
        except (OSError, StorageError) as e:  # listed a moment ago, gone or refused now
            print(f"error: {e}", file=sys.stderr)
            return 2
        try:
            probs = predictor.predict(datas)
        except Exception as e:  # one bad file in the batch: fall back to one by one to name it
            probs = None
            err = e
        for i, path in enumerate(batch):
            if probs is None:
                try:
                    p = predictor.predict([datas[i]])[0]
                except Exception:  # noqa: BLE001 - report and go on with the other images
                    print(f"error: {path}: cannot decode as an image ({type(err).__name__})", file=sys.stderr)
                    failed += 1
                    continue
            else:
                p = probs[i]
            top = p.argsort()[::-1][:k]
            if _JSON.value:
                print(
                    json.dumps(
                        {
                            "path": path,
                            "top": [
                                {"class": predictor.class_names[j], "probability": round(float(p[j]), 6)} for j in top
                            ],
                        }
                    )
                )
            else:
                print(f"{path}: " + ", ".join(f"{predictor.class_names[j]} {p[j]:.3f}" for j in top))
    return 1 if failed else 0


def run():
    exit_gc.skip_final_gc()
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
