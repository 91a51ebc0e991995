"""Trains any zoo model on TFRecords, on one device, several GPUs/logical CPUs or several workers.

    python -m trainer.train --data_dir=workspace/tfrecords/flowers/1.0.0 --run_dir=workspace/runs/demo \\
        --preset=demo_flowers --strategy=mirrored --cpu_replicas=2

Every field of the typed config (trainer/config.py: sections model, data, optim, runtime) is a
flat flag; precedence is defaults < --preset < --config_file < flags given on the command line. Running the same
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

from absl import app, flags, logging

import cli
from pipelines import exit_gc
from storage import StorageError, fs
from trainer import config as config_lib
from trainer import shutdown


def _define_config_flags() -> None:
    """One flat flag per config field (`--learning_rate` sets optim.learning_rate), typed, with the
    help, bounds and choices of the field's metadata (trainer/config.py): flags live in one place."""
    for p in config_lib.PARAMS.values():
        help_ = p.help_text()
        if p.choices:
            flags.DEFINE_enum(p.flag, p.default, p.choices, help_)
        elif p.item_type:
            flags.DEFINE_list(p.flag, [str(v) for v in p.default], help_)
        elif p.type is bool:
            flags.DEFINE_bool(p.flag, p.default, help_)
        elif p.type is int:
            flags.DEFINE_integer(p.flag, p.default, help_)
        elif p.type is float:
            flags.DEFINE_float(p.flag, p.default, help_)
        else:
            flags.DEFINE_string(p.flag, p.default, help_)
    for name, help_ in config_lib.LEGACY_KEYS.items():
        flags.DEFINE_float(name, None, help_)


_define_config_flags()
_RUN_DIR = flags.DEFINE_string(
    "run_dir",
    None,
    "Run directory (config, checkpoints, logs, report, export): local "
    "or gs:// (multi-worker: storage every worker reaches).",
)
_PRESET = flags.DEFINE_string("preset", "", f"Named recipe: {', '.join(sorted(config_lib.PRESETS))}.")
_CONFIG_FILE = flags.DEFINE_string(
    "config_file",
    "",
    "YAML or JSON file of config fields: flat keys named as the flags (learning_rate: 0.1), or in "
    "their sections (optim: {learning_rate: 0.1}; sections: " + ", ".join(config_lib.SECTIONS) + ").",
)
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
    names = [*config_lib.PARAMS, *config_lib.LEGACY_KEYS]
    overrides = {name: FLAGS[name].value for name in names if FLAGS[name].present}
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
        from trainer import console

        console.quiet()  # before TensorFlow loads
    except (ValueError, OSError) as e:  # OSError: a --config_file that is not there (StorageError too)
        return usage_error(str(e))
    run_dir = _RUN_DIR.value
    try:
        check_paths(config, run_dir)
        code = run(config, run_dir, _MODE.value, _EVAL_SPLIT.value, _FORCE.value, not _NO_EXPORT.value)
    except (ValueError, StorageError) as e:
        code = usage_error(str(e))
    if code == shutdown.SIGTERM_EXIT or config.runtime.strategy != "multi_worker":
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
        ("--data_dir", config.data.data_dir),
        ("--tfds_data_dir", config.data.tfds_data_dir),
    ):
        if path:
            fs.check(path, flag, tensorflow=True)
            fs.preflight(path, flag, write=flag == "--run_dir")


def check_config(config: config_lib.TrainConfig) -> None:
    """Values out of range and contradictory settings: one-line errors before any work."""
    config_lib.check_values(config)
    if config.runtime.jit and config.runtime.deterministic:
        raise ValueError(
            "--jit with --deterministic: XLA has no deterministic version of some gradients (MaxPool); "
            "drop one of the two"
        )


def run(
    config: config_lib.TrainConfig,
    run_dir: str,
    mode: str = "train",
    eval_split: str = "test",
    force: bool = False,
    do_export: bool = True,
) -> int:
    check_config(config)
    from trainer import console
    from trainer.progress import Progress

    progress = Progress(config.runtime.log_every)
    # Strategy first: logical devices must be configured before any TensorFlow op.
    with progress.phase("starting TensorFlow") as phase, console.starting():
        import tensorflow as tf

        from trainer import strategy as strategy_lib

        if config.runtime.deterministic:
            tf.config.experimental.enable_op_determinism()
        strategy = strategy_lib.make_strategy(
            config.runtime.strategy, config.runtime.cpu_replicas, config.runtime.num_gpus
        )
        phase.note = f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)"
    from trainer import data as data_lib
    from trainer import export as export_lib
    from trainer import loop
    from trainer.models import get_spec
    from trainer.task import ClassificationTask

    get_spec(config.model.name)  # unknown model: the list of known ones, before any work
    with progress.phase("reading metadata") as phase:
        info = data_lib.open_dataset(config.data.data_dir, config.data.tfds_name, config.data.tfds_data_dir)
        sizes = ", ".join(f"{n} {s}" for s, n in sorted(info.split_sizes.items()))
        phase.note = f"{info.builder.info.name} {info.builder.info.version}: {len(info.class_names)} classes; {sizes}"
    if mode == "eval" and not fs.exists(fs.join(run_dir, "config.json")):
        raise ValueError(f"--mode=eval: {run_dir} has no config.json (nothing trained there)")
    # Only the chief owns the run directory; other workers follow its config.
    resuming = prepare_run_dir(run_dir, config, force) if strategy_lib.is_chief(strategy) else False
    prep_path = fs.join(run_dir, export_lib.PREPROCESSING_FILE)
    image_size = config.model.image_size or get_spec(config.model.name).default_input_shape[0]
    identity = data_lib.dataset_identity(info)
    with progress.phase("dataset statistics") as phase:
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
            phase.note = f"the run's {export_lib.PREPROCESSING_FILE}"
        else:
            try:
                mean, std, phase.note = data_lib.normalization_constants(
                    config.data.normalization, info, config.data.train_split, image_size
                )
            except data_lib.CorruptDataError as e:
                print(f"error: {e}", file=sys.stderr)
                return 3
            prep = export_lib.preprocessing_info(image_size, info.channels, mean, std, info.class_names)
        phase.note = f"--normalization={config.data.normalization}: {phase.note}"
    with progress.phase("building the model") as phase:
        task = ClassificationTask(config, info, mean, std)
        trainer = loop.Trainer(config, run_dir, strategy, task, progress)
        phase.note = f"{config.model.name}, {trainer.model.count_params() / 1e6:.2f}M parameters"
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
    for key, split in (
        ("train", c.data.train_split),
        ("validation", c.data.validation_split),
        ("test", c.data.test_split),
    ):
        if split not in trainer.info.split_sizes:
            continue
        metrics, logits, labels = trainer.evaluate(split)
        results[key] = dataclasses.asdict(metrics)
        if key in ("test", "validation") and (key == "test" or cm is None):
            cm = report.confusion_matrix(labels, logits.argmax(1), len(names))
            cm_split = split
    report.plot_curves(history, fs.join(run_dir, "curves.png"))
    if cm is not None:
        report.plot_confusion(cm, names, fs.join(run_dir, "confusion.png"), f"{c.model.name} on {cm_split}")
    train_rates = [h["images_per_second"] for h in history]
    out = {
        "model": c.model.name,
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
        f"train: {c.model.name} {len(history)} epochs in {seconds:.0f}s; "
        f"test top-1 {test.get('top1', float('nan')):.4f} "
        f"top-5 {test.get('top5', float('nan')):.4f} -> {fs.join(run_dir, 'report.json')}",
        flush=True,
    )
    return 0


def run_cli():
    exit_gc.skip_final_gc()
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run_cli()
