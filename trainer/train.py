"""Trains any zoo model on TFRecords, on one device, several GPUs/logical CPUs or several workers.

    python -m trainer.train --data_dir=workspace/tfrecords/flowers/1.0.0 --run_dir=workspace/runs/demo \
        --preset=demo_flowers --strategy=mirrored --cpu_replicas=2

Every field of the typed config (trainer/config.py) is a flag; precedence is
defaults < --preset < --config_file < flags given on the command line. Running the same
command again resumes from the last checkpoint. `--mode=eval` evaluates the latest
checkpoint on --eval_split without training. Multi-worker: set TF_CONFIG on every worker
and pass --strategy=multi_worker (see README.md).

Writes <run_dir>/: config.json, dataset.json, checkpoints/, logs/ (TensorBoard), metrics.jsonl,
report.json, curves.png, confusion.png, labels.txt, preprocessing.json, model.keras, export/.
--run_dir, --data_dir, --tfds_data_dir and --config_file may be local paths or gs:// (what
TensorFlow reads and writes; s3:// is refused with the way out). A bucket that does not exist,
refuses access or does not answer stops the run before any work, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
import types
import typing

from absl import app, flags, logging

import cli
from pipelines import quick_exit
from storage import StorageError, fs
from trainer import config as config_lib
from trainer import shutdown

_HELP = {
    "model": "Zoo model name (python -m trainer.models --list).",
    "image_size": "Model input size (0: the model's default).",
    "dropout": "Dropout before the classifier (default: the model's).",
    "weight_decay": "L2 factor on kernels (default: the model's).",
    "bn_momentum": "Override the momentum of every BatchNormalization (0.9 suits small datasets).",
    "sync_bn": "Synchronise BatchNormalization statistics across replicas (same maths as one device).",
    "aux_heads": "Train auxiliary heads (GoogLeNet), weighted by the model's aux loss weights.",
    "data_dir": "A <dataset>/<version> folder written by pipelines.build_tfrecords (local or gs://).",
    "tfds_name": "A TFDS image classification dataset already on disk (never downloaded).",
    "tfds_data_dir": "TFDS data_dir holding --tfds_name.",
    "train_split": "Training split name.",
    "validation_split": "Validation split name (evaluated each epoch if present).",
    "test_split": "Test split name (evaluated at the end if present).",
    "shuffle_buffer": "Examples in the shuffle buffer.",
    "cache": "Keep the decoded, resized images in memory after the first epoch (image_size^2 * channels bytes "
    "per example, per input pipeline), so later epochs and evaluations decode nothing.",
    "augment_flip": "Online random horizontal flip.",
    "augment_crop_pad": "Online random crop after padding by this many pixels (0: off).",
    "mixup_alpha": "Mixup with Beta(alpha, alpha) (0: off).",
    "cutmix_alpha": "CutMix with Beta(alpha, alpha) (0: off; with mixup, one of the two per batch).",
    "normalization": "Per-channel normalisation: dataset (computed from train), imagenet, cifar10_seed004, unit.",
    "epochs": "Epochs to train.",
    "batch_size": "Global batch size (split across replicas).",
    "optimizer": "sgd, adam, adamw or rmsprop.",
    "learning_rate": "Base learning rate.",
    "momentum": "SGD/RMSprop momentum.",
    "nesterov": "Nesterov momentum for SGD.",
    "schedule": "constant, step, cosine, exponential or plateau.",
    "boundaries": "step schedule: epochs where the rate changes (comma list).",
    "values": "step schedule: rates per interval (one more than boundaries).",
    "warmup_epochs": "Linear warmup epochs.",
    "decay_rate": "exponential: factor per epoch; plateau: factor on plateau.",
    "plateau_patience": "plateau: epochs without val-loss improvement before decaying.",
    "min_learning_rate": "Floor of the cosine/exponential/plateau schedules.",
    "label_smoothing": "Label smoothing.",
    "clip_norm": "Global gradient norm clipping (0: off).",
    "strategy": "auto, one_device, mirrored or multi_worker (reads TF_CONFIG).",
    "cpu_replicas": "Without GPUs: split the CPU into this many logical devices for mirrored (at most 4x the cores).",
    "num_gpus": "GPUs to use (-1: all visible).",
    "precision": "float32, mixed_float16 (with loss scaling) or mixed_bfloat16.",
    "jit": "Compile the train step with XLA.",
    "seed": "Seed of weights, data order and augmentation.",
    "deterministic": "Deterministic data order and TF ops: a resumed run ends with the same weights (slower).",
    "log_every": "Log every N steps.",
    "checkpoint_every": "Also checkpoint every N steps (0: at epoch ends only).",
    "max_to_keep": "Checkpoints kept.",
    "recover_from_nan": "On a NaN/Inf loss, roll back to the last checkpoint with a lower LR instead of stopping.",
    "nan_lr_factor": "LR multiplier at each NaN roll-back.",
    "max_nan_recoveries": "Stop after this many NaN roll-backs.",
    "stop_grace_seconds": "After SIGTERM the run saves a checkpoint once the step in progress returns and exits 143; "
    "if that takes longer than this, it exits 143 anyway, keeping the last checkpoint "
    "(preemption leaves ~30 s).",
}


def _define_config_flags() -> None:
    """One flag per TrainConfig field, typed from the dataclass (flags live in one place)."""
    hints = typing.get_type_hints(config_lib.TrainConfig)
    for f in dataclasses.fields(config_lib.TrainConfig):
        hint, default, help_ = hints[f.name], f.default, _HELP[f.name]
        optional = isinstance(hint, types.UnionType) and type(None) in hint.__args__
        base = next(a for a in hint.__args__ if a is not type(None)) if optional else hint
        origin = typing.get_origin(base)
        if origin is tuple:
            flags.DEFINE_list(f.name, [str(v) for v in default], help_)
        elif base is bool:
            flags.DEFINE_bool(f.name, default, help_)
        elif base is int:
            flags.DEFINE_integer(f.name, default, help_)
        elif base is float:
            flags.DEFINE_float(f.name, default, help_)
        else:
            flags.DEFINE_string(f.name, default, help_)


_define_config_flags()
_RUN_DIR = flags.DEFINE_string(
    "run_dir",
    None,
    "Run directory (config, checkpoints, logs, report, export): local "
    "or gs:// (multi-worker: storage every worker reaches).",
)
_PRESET = flags.DEFINE_string("preset", "", f"Named recipe: {', '.join(sorted(config_lib.PRESETS))}.")
_CONFIG_FILE = flags.DEFINE_string("config_file", "", "YAML or JSON file of config fields.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train, or eval a checkpoint without training.")
_EVAL_SPLIT = flags.DEFINE_string("eval_split", "test", "--mode=eval: the split to evaluate.")
_FORCE = flags.DEFINE_bool(
    "force",
    False,
    "Resume even if the model or data in the config changed, or the dataset "
    "was rebuilt (other class order, name, version or metadata than dataset.json records).",
)
_NO_EXPORT = flags.DEFINE_bool("skip_export", False, "Do not write model.keras and the SavedModel.")

FLAGS = flags.FLAGS
DATASET_FILE = "dataset.json"  # the dataset a run started on (trainer.data.dataset_identity)


def config_from_flags() -> config_lib.TrainConfig:
    """Defaults < preset < config file < flags set on the command line."""
    hints = typing.get_type_hints(config_lib.TrainConfig)
    overrides = {}
    for f in dataclasses.fields(config_lib.TrainConfig):
        if FLAGS[f.name].present:
            value = FLAGS[f.name].value
            if typing.get_origin(hints[f.name]) is tuple:
                inner = typing.get_args(hints[f.name])[0]
                value = tuple(inner(v) for v in value)
            overrides[f.name] = value
    return config_lib.build_config(_PRESET.value, _CONFIG_FILE.value, overrides)


def prepare_run_dir(run_dir: str, config: config_lib.TrainConfig, force: bool) -> bool:
    """Creates or checks the run dir; returns True when resuming. Refuses identity changes."""
    path = fs.join(run_dir, "config.json")
    if fs.exists(path):
        saved = config_lib.load(path)
        changes = config_lib.identity_changes(saved, config)
        if changes and not force:
            raise ValueError(
                f"{run_dir} holds a run with another model or data ({'; '.join(changes)}): use another "
                "--run_dir, or --force to resume anyway"
            )
        return True
    return False


def check_same_dataset(run_dir: str, prep: dict, identity: dict, force: bool) -> None:
    """A resumed run must train on the dataset it started on: same class order (else every label
    means another class), same name, version and metadata fingerprint (`dataset.json`, written at
    the start). Refused with the first difference and the ways out, or a warning with --force."""
    from trainer import data as data_lib

    path = fs.join(run_dir, DATASET_FILE)
    recorded = fs.read_json(path) if fs.exists(path) else {"class_names": prep["class_names"]}
    change = data_lib.dataset_change(recorded, identity)
    if change is None:
        return
    if not force:
        raise ValueError(
            f"{run_dir} was trained on another dataset: {change}. Resuming would train on other labels "
            "or data: start a new --run_dir, or pass --force to resume anyway (labels.txt, "
            "preprocessing.json and the export then follow the new data)"
        )
    logging.warning(
        "--force: resuming %s on another dataset: %s; labels.txt, preprocessing.json, dataset.json and "
        "the export now follow the new data",
        run_dir,
        change,
    )


def hardware(strategy) -> dict:
    import tensorflow as tf

    names = (
        (tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
        (tf.distribute.MirroredStrategy, "MirroredStrategy"),
        (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy"),
    )
    name = next((n for cls, n in names if isinstance(strategy, cls)), type(strategy).__name__)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpus": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "replicas": strategy.num_replicas_in_sync,
        "strategy": name,
    }


def main(argv):
    if len(argv) > 1:
        return usage_error(f"unexpected arguments: {argv[1:]}")
    if not _RUN_DIR.value:
        return usage_error("--run_dir is required")
    try:
        if _CONFIG_FILE.value:
            fs.preflight(fs.dirname(_CONFIG_FILE.value), "--config_file")
        config = config_from_flags()
        check_config(config)
    except (ValueError, OSError) as e:  # OSError: a --config_file that is not there (StorageError too)
        return usage_error(str(e))
    run_dir = _RUN_DIR.value
    try:
        check_paths(config, run_dir)
        code = run(config, run_dir, _MODE.value, _EVAL_SPLIT.value, _FORCE.value, not _NO_EXPORT.value)
    except (ValueError, StorageError) as e:
        code = usage_error(str(e))
    if code == shutdown.SIGTERM_EXIT or config.strategy != "multi_worker":
        # Every file is written and closed: end now rather than wait for TensorFlow's teardown
        # (up to a minute, see trainer/shutdown.py). A worker of a cluster that finished normally
        # exits the usual way, saying goodbye to the cluster the chief may still be using.
        shutdown.fast_exit(code)
    return code


def usage_error(message: str) -> int:
    """A flag, path or store the program cannot use: one `error:` line, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def check_paths(config: config_lib.TrainConfig, run_dir: str) -> None:
    """Paths TensorFlow will read or write: a scheme it has, and a store that answers (run dir: takes a write)."""
    for flag, path in (
        ("--run_dir", run_dir),
        ("--data_dir", config.data_dir),
        ("--tfds_data_dir", config.tfds_data_dir),
    ):
        if path:
            fs.check(path, flag, tensorflow=True)
            fs.preflight(path, flag, write=flag == "--run_dir")


def check_config(config: config_lib.TrainConfig) -> None:
    """Values out of range and contradictory settings: one-line errors before any work."""
    config_lib.check_values(config)
    if config.jit and config.deterministic:
        raise ValueError(
            "--jit with --deterministic: XLA has no deterministic version of some gradients (MaxPool); "
            "drop one of the two"
        )
    if config.precision not in ("float32", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"--precision={config.precision!r}: use float32, mixed_float16 or mixed_bfloat16")


def run(
    config: config_lib.TrainConfig,
    run_dir: str,
    mode: str = "train",
    eval_split: str = "test",
    force: bool = False,
    do_export: bool = True,
) -> int:
    check_config(config)
    # Strategy first: logical devices must be configured before any TensorFlow op.
    from trainer import strategy as strategy_lib

    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    strategy = strategy_lib.make_strategy(config.strategy, config.cpu_replicas, config.num_gpus)
    from trainer import data as data_lib
    from trainer import export as export_lib
    from trainer import loop
    from trainer.models import get_spec

    get_spec(config.model)  # unknown model: the list of known ones, before any work
    info = data_lib.open_dataset(config.data_dir, config.tfds_name, config.tfds_data_dir)
    if mode == "eval" and not fs.exists(fs.join(run_dir, "config.json")):
        raise ValueError(f"--mode=eval: {run_dir} has no config.json (nothing trained there)")
    # Only the chief owns the run directory; other workers follow its config.
    resuming = prepare_run_dir(run_dir, config, force) if strategy_lib.is_chief(strategy) else False
    prep_path = fs.join(run_dir, export_lib.PREPROCESSING_FILE)
    image_size = config.image_size or get_spec(config.model).default_input_shape[0]
    identity = data_lib.dataset_identity(info)
    if resuming and fs.exists(prep_path):
        prep = fs.read_json(prep_path)
        if len(prep["class_names"]) != len(info.class_names):
            raise ValueError(
                f"{run_dir} was trained on {len(prep['class_names'])} classes, the data has "
                f"{len(info.class_names)}: use another --run_dir"
            )
        check_same_dataset(run_dir, prep, identity, force)
        prep = {**prep, "class_names": list(info.class_names)}  # the same, or the new order with --force
        mean, std = prep["mean"], prep["std"]
    else:
        try:
            mean, std = data_lib.normalization_constants(config.normalization, info, config.train_split, image_size)
        except data_lib.CorruptDataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        prep = export_lib.preprocessing_info(image_size, info.channels, mean, std, info.class_names)
    trainer = loop.Trainer(config, run_dir, strategy, info, mean, std)
    if trainer.chief:
        fs.makedirs(run_dir)
        if mode == "train":
            config_lib.save(config, fs.join(run_dir, "config.json"))
        fs.write_json(prep_path, prep)
        fs.write_text(fs.join(run_dir, "labels.txt"), "\n".join(info.class_names) + "\n")
        fs.write_json(fs.join(run_dir, DATASET_FILE), identity)
    try:
        return train_or_evaluate(trainer, prep, mode, eval_split, do_export)
    finally:
        trainer.close()


def train_or_evaluate(trainer, prep: dict, mode: str, eval_split: str, do_export: bool) -> int:
    """Restores the last checkpoint, then evaluates it (--mode=eval) or trains and reports."""
    from trainer import loop

    run_dir, strategy = trainer.run_dir, trainer.strategy
    start_step = trainer.restore()
    if mode == "eval":
        if not start_step:
            raise ValueError(f"--mode=eval: no checkpoint in {run_dir}/checkpoints")
        try:
            metrics, _, _ = trainer.evaluate(eval_split)
        except loop.TrainingError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        print(json.dumps({"split": eval_split, **dataclasses.asdict(metrics)}), flush=True)
        return 0
    t0 = time.time()
    try:
        history = trainer.fit()
        if not trainer.chief:
            return 0
        return finish(trainer, history, run_dir, prep, time.time() - t0, strategy, do_export)
    except KeyboardInterrupt:
        logging.warning("interrupted; run the same command to resume")
        return shutdown.SIGTERM_EXIT
    except loop.TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3


def finish(trainer, history, run_dir, prep, seconds, strategy, do_export) -> int:
    from trainer import export as export_lib
    from trainer import report

    c = trainer.config
    names = trainer.info.class_names
    results = {}
    cm = None
    for key, split in (("train", c.train_split), ("validation", c.validation_split), ("test", c.test_split)):
        if split not in trainer.info.split_sizes:
            continue
        metrics, logits, labels = trainer.evaluate(split)
        results[key] = dataclasses.asdict(metrics)
        if key in ("test", "validation") and (key == "test" or cm is None):
            cm = report.confusion_matrix(labels, logits.argmax(1), len(names))
            cm_split = split
    report.plot_curves(history, fs.join(run_dir, "curves.png"))
    if cm is not None:
        report.plot_confusion(cm, names, fs.join(run_dir, "confusion.png"), f"{c.model} on {cm_split}")
    train_rates = [h["images_per_second"] for h in history]
    out = {
        "model": c.model,
        "class_names": names,
        "splits": results,
        "per_class": report.per_class(cm, names) if cm is not None else {},
        "per_class_split": cm_split if cm is not None else None,
        "images_per_second": sorted(train_rates)[len(train_rates) // 2] if train_rates else None,
        "wall_time_seconds": round(seconds, 1),
        "epochs": len(history),
        "hardware": hardware(strategy),
        "parameters": int(trainer.model.count_params()),
    }
    if do_export:
        keras_path, export_dir = export_lib.export(trainer.model, run_dir, prep)
        out.update(model_keras=keras_path, export_dir=export_dir)
    fs.write_json(fs.join(run_dir, "report.json"), out)
    test = results.get("test") or results.get("validation") or {}
    print(
        f"train: {c.model} {len(history)} epochs in {seconds:.0f}s; test top-1 {test.get('top1', float('nan')):.4f} "
        f"top-5 {test.get('top5', float('nan')):.4f} -> {fs.join(run_dir, 'report.json')}",
        flush=True,
    )
    return 0


def run_cli():
    quick_exit.skip_final_gc()
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run_cli()
