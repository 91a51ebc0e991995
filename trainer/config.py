"""Typed training configuration in four sections, named presets for the seed recipes, and JSON/YAML I/O.

`TrainConfig` has the sections of TF Model Garden's image-classification config: `model` (the
network and how it is built), `data` (where the examples come from, how they are read and
augmented), `optim` (length, batch, optimizer, learning-rate schedule, regularisation) and
`runtime` (devices, precision, seed, logging, checkpoints, recovery). Each field carries its help,
its bounds and its choices in `dataclasses.field(metadata=...)`: trainer.train makes one flat flag
per field from them (`--learning_rate` sets `optim.learning_rate`) and `check_values` checks every
value against them, whichever layer set it.

Precedence (lowest first): dataclass defaults < --preset < --config_file < explicit flags. Presets
and config files take flat keys named as the flags (`learning_rate: 0.1`), sections
(`optim: {learning_rate: 0.1}`), or both. The final config is saved nested as <run_dir>/config.json;
the flat config.json of runs made before the sections existed still loads. A resumed run compares
the fields in `IDENTITY_FIELDS` with the saved ones and refuses a change unless --force.

No TensorFlow here (nor in the registries' names it reads): `--help` is made from this module.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from typing import Any, NamedTuple

import yaml

from storage import fs
from trainer import optim
from trainer.normalization import NORMALIZATIONS
from trainer.strategy import STRATEGIES

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras mixed-precision policy names


class Bounds(NamedTuple):
    """Allowed values of a numeric field (each element of a list field); high None: unbounded."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def text(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"

    def admits(self, v: float) -> bool:
        if not math.isfinite(v):  # nan compares false with everything; inf is no rate, size or factor
            return False
        above = v > self.low if self.low_open else v >= self.low
        below = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return above and below


# Bounds used by several fields. A value out of range would train on (negative learning rate),
# crash later with a traceback (negative seed, shuffle buffer 0) or hang (negative replicas are
# read as "all"): every numeric field has one, checked before any work.
AT_LEAST_0 = Bounds(0)
AT_LEAST_1 = Bounds(1)
ABOVE_0 = Bounds(0, low_open=True)
FRACTION = Bounds(0, 1)  # [0, 1]
BELOW_1 = Bounds(0, 1, high_open=True)  # [0, 1)


def param(default: Any, help: str, bounds: Bounds | None = None, choices=(), flag: str = ""):
    """A config field with its help, bounds and choices; `flag`: its flag's name if not the field's."""
    return dataclasses.field(
        default=default, metadata={"help": help, "bounds": bounds, "choices": tuple(choices), "flag": flag}
    )


@dataclasses.dataclass
class ModelConfig:
    name: str = param("cifar_resnet20", "Zoo model name (python -m trainer.models --list).", flag="model")
    image_size: int = param(0, "Model input size (0: the model's default).", AT_LEAST_0)
    dropout: float | None = param(None, "Dropout before the classifier (default: the model's).", BELOW_1)
    bn_momentum: float | None = param(
        None, "Override the momentum of every BatchNormalization (0.9 suits small datasets).", FRACTION
    )
    sync_bn: bool = param(
        False, "Synchronise BatchNormalization statistics across replicas (same maths as one device)."
    )
    aux_heads: bool = param(False, "Train auxiliary heads (GoogLeNet), weighted by the model's aux loss weights.")


@dataclasses.dataclass
class DataConfig:
    data_dir: str = param("", "A <dataset>/<version> folder written by pipelines.build_tfrecords (local or gs://).")
    tfds_name: str = param("", "A TFDS image classification dataset already on disk (never downloaded).")
    tfds_data_dir: str = param("", "TFDS data_dir holding --tfds_name.")
    train_split: str = param("train", "Training split name.")
    validation_split: str = param("validation", "Validation split name (evaluated each epoch if present).")
    test_split: str = param("test", "Test split name (evaluated at the end if present).")
    shuffle_buffer: int = param(2048, "Examples in the shuffle buffer.", AT_LEAST_1)
    cache: bool = param(
        False,
        "Keep the decoded, resized images in memory after the first epoch (image_size^2 * channels bytes "
        "per example, per input pipeline), so later epochs and evaluations decode nothing.",
    )
    augment_flip: bool = param(True, "Online random horizontal flip.")
    augment_crop_pad: int = param(
        0, "Online random crop after padding by this many pixels (0: off; CIFAR style: 4).", AT_LEAST_0
    )
    mixup_alpha: float = param(0.0, "Mixup with Beta(alpha, alpha) (0: off).", AT_LEAST_0)
    cutmix_alpha: float = param(
        0.0, "CutMix with Beta(alpha, alpha) (0: off; with mixup, one of the two per batch).", AT_LEAST_0
    )
    normalization: str = param(
        "dataset",
        "Per-channel normalisation: dataset (the train split's mean/std: the dataset's channel_stats, "
        "else computed from up to 1000 train images at the start) or named constants.",
        choices=("dataset", *NORMALIZATIONS),
    )


@dataclasses.dataclass
class OptimConfig:
    epochs: int = param(10, "Epochs to train.", AT_LEAST_1)
    batch_size: int = param(64, "Global batch size (split across replicas).", AT_LEAST_1)
    optimizer: str = param("sgd", f"Optimizer. {optim.optimizers_help()}.", choices=optim.OPTIMIZERS)
    learning_rate: float = param(0.01, "Base learning rate.", ABOVE_0)
    momentum: float = param(0.9, "SGD/RMSprop momentum.", FRACTION)
    nesterov: bool = param(False, "Nesterov momentum for SGD.")
    weight_decay: float | None = param(None, optim.weight_decay_help(), AT_LEAST_0)
    schedule: str = param(
        "constant",
        f"Learning-rate schedule, after the warmup. {optim.schedules_help()}.",
        choices=optim.SCHEDULES,
    )
    boundaries: tuple[int, ...] = param((), "step schedule: epochs where the rate changes (comma list).", AT_LEAST_0)
    values: tuple[float, ...] = param(
        (), "step schedule: rates per interval (comma list, one more than --boundaries).", AT_LEAST_0
    )
    warmup_epochs: float = param(
        0.0,
        "Linear warmup to the schedule's first rate over this many epochs; every schedule starts when it "
        "ends (its boundaries and decay count from there).",
        AT_LEAST_0,
    )
    step_decay_rate: float = param(0.1, "step schedule without --values: rate multiplier at each boundary.", ABOVE_0)
    exponential_decay_rate: float = param(0.1, "exponential schedule: rate multiplier per epoch.", ABOVE_0)
    plateau_factor: float = param(0.1, "plateau schedule: rate multiplier on each plateau.", ABOVE_0)
    plateau_patience: int = param(
        5, "plateau schedule: epochs without a lower validation loss before decaying.", AT_LEAST_0
    )
    min_learning_rate: float = param(0.0, "Floor of every schedule (reached by cosine at the end).", AT_LEAST_0)
    label_smoothing: float = param(0.0, "Label smoothing.", BELOW_1)
    clip_norm: float = param(0.0, "Global gradient norm clipping (0: off).", AT_LEAST_0)


@dataclasses.dataclass
class RuntimeConfig:
    strategy: str = param(
        "auto",
        "Distribution strategy (multi_worker reads TF_CONFIG; auto: mirrored if several devices).",
        choices=STRATEGIES,
    )
    cpu_replicas: int = param(
        0,
        "Without GPUs: split the CPU into this many logical devices for mirrored (at most 4x the cores).",
        AT_LEAST_0,
    )
    num_gpus: int = param(-1, "GPUs to use (-1: all visible).", Bounds(-1))
    precision: str = param("float32", "Compute precision (mixed_float16 with loss scaling).", choices=PRECISIONS)
    jit: bool = param(False, "Compile the train step with XLA.")
    seed: int = param(0, "Seed of weights, data order and augmentation.", AT_LEAST_0)
    deterministic: bool = param(
        False, "Deterministic data order and TF ops: a resumed run ends with the same weights (slower)."
    )
    log_every: int = param(
        20, "Log a step line (off a terminal; a tqdm bar on one) and TensorBoard scalars every N steps.", AT_LEAST_0
    )
    checkpoint_every: int = param(0, "Also checkpoint every N steps (0: at epoch ends only).", AT_LEAST_0)
    max_to_keep: int = param(3, "Checkpoints kept.", AT_LEAST_1)
    recover_from_nan: bool = param(
        False, "On a NaN/Inf loss, roll back to the last checkpoint with a lower LR instead of stopping."
    )
    nan_lr_factor: float = param(0.1, "LR multiplier at each NaN roll-back.", Bounds(0, 1, True, True))
    max_nan_recoveries: int = param(3, "Stop after this many NaN roll-backs.", AT_LEAST_0)
    stop_grace_seconds: float = param(
        20.0,
        "After SIGTERM the run saves a checkpoint once the step in progress returns and exits 143; if that "
        "takes longer than this, it exits 143 anyway, keeping the last checkpoint (preemption leaves ~30 s).",
        ABOVE_0,
    )


@dataclasses.dataclass
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclasses.dataclass(frozen=True)
class Param:
    """One config field as its flag sees it."""

    flag: str
    section: str
    name: str
    type: Any  # the field's type with None taken out (`float | None` -> float)
    optional: bool
    default: Any
    help: str
    bounds: Bounds | None
    choices: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def item_type(self) -> type | None:
        """The element type of a list field (`tuple[int, ...]` -> int), else None."""
        return typing.get_args(self.type)[0] if typing.get_origin(self.type) is tuple else None

    def get(self, config: TrainConfig) -> Any:
        return getattr(getattr(config, self.section), self.name)

    def help_text(self) -> str:
        """The help with the bounds (absl shows the default and the choices itself)."""
        return f"{self.help} Must be {self.bounds.text()}." if self.bounds else self.help

    def coerce(self, value: Any, origin: str) -> Any:
        """`value` (from a flag, a preset or a JSON/YAML file) as the field's type, or ValueError."""
        if value is None and self.optional:
            return None
        kind = self.item_type or self.type
        items = value if self.item_type else (value,)
        if self.item_type and isinstance(items, str):  # YAML `boundaries: 100,200`
            items = [v for v in items.split(",") if v.strip()]
        try:
            if self.item_type and not isinstance(items, (list, tuple)):
                raise TypeError
            out = tuple(_as(kind, v) for v in items)
        except (TypeError, ValueError):
            one, many = _KIND_NAMES[kind]
            what = f"a list of {many}" if self.item_type else one
            raise ValueError(f"{origin}: {self.flag}={value!r} is not {what}") from None
        return out if self.item_type else out[0]


# What a value of each type is called in an error: (one, a list of them).
_KIND_NAMES = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
    str: ("a string", "strings"),
}


def _as(kind: type, v: Any) -> Any:
    if kind in (bool, str):
        if isinstance(v, kind):
            return v
        raise TypeError
    if isinstance(v, bool) or (kind is int and isinstance(v, float) and not v.is_integer()):
        raise TypeError
    return kind(v)  # numbers, and numbers written as strings ("100" from a list flag)


def _params() -> dict[str, Param]:
    out = {}
    for section, section_type in typing.get_type_hints(TrainConfig).items():
        hints = typing.get_type_hints(section_type)
        for f in dataclasses.fields(section_type):
            hint = hints[f.name]
            args = typing.get_args(hint)
            optional = typing.get_origin(hint) is not tuple and type(None) in args
            base = next(a for a in args if a is not type(None)) if optional else hint
            flag = f.metadata["flag"] or f.name
            if flag in out:
                raise ValueError(f"config field {section}.{f.name}: flag --{flag} is taken by {out[flag].path}")
            out[flag] = Param(
                flag,
                section,
                f.name,
                base,
                optional,
                f.default,
                f.metadata["help"],
                f.metadata["bounds"],
                f.metadata["choices"],
            )
    return out


PARAMS: dict[str, Param] = _params()  # by flag name, in section and field order
_BY_PATH = {p.path: p for p in PARAMS.values()}

# `decay_rate` was one field for three schedules; a flat file (or flag) giving it sets the one
# of the schedule in effect once its layer is applied.
LEGACY_DECAY_RATE = {"step": "step_decay_rate", "exponential": "exponential_decay_rate", "plateau": "plateau_factor"}
# Flat keys that are no field, each also a (float) flag, with that flag's help.
LEGACY_KEYS = {
    "decay_rate": f"Old name of --{', --'.join(LEGACY_DECAY_RATE.values())}: sets the one of the --schedule in effect."
}

IDENTITY_FIELDS = (
    "model.name",
    "model.image_size",
    "model.aux_heads",
    "data.data_dir",
    "data.tfds_name",
    "data.train_split",
    "data.normalization",
)

PRESETS: dict[str, dict[str, Any]] = {
    # 004_5c920be0a47925d0.txt: ResNeXt on CIFAR-10, ~95% after 300 epochs.
    "seed004_resnext_cifar": dict(
        model="seed004_resnext",
        image_size=32,
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        batch_size=64,
        epochs=300,
        schedule="step",
        boundaries=(100, 200),
        values=(0.01, 0.001, 0.0001),
        learning_rate=0.01,
        weight_decay=5e-4,
        augment_flip=True,
        augment_crop_pad=4,
        normalization="cifar10_seed004",
    ),
    # 000_2b1ce18881ec2c31.txt: Adam, batch 64, 50 epochs on CIFAR-10.
    "seed000_adam_cifar": dict(
        model="seed000_cifar_resnet",
        image_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=64,
        epochs=50,
        schedule="constant",
        augment_flip=False,
    ),
    # 003_924d51171602d041.txt: SGD lr 0.01 (no momentum), batch 128, MNIST padded to 224.
    "seed003_sgd_mnist": dict(
        model="seed003_alexnet",
        optimizer="sgd",
        learning_rate=0.01,
        momentum=0.0,
        batch_size=128,
        epochs=3,
        schedule="constant",
        augment_flip=False,
    ),
    # The demo: the 20 synthetic flower classes at 64x64 on two logical CPUs.
    "demo_flowers": dict(
        model="resnet18",
        image_size=64,
        optimizer="adam",
        learning_rate=2e-3,
        batch_size=64,
        epochs=30,
        schedule="cosine",
        warmup_epochs=1,
        bn_momentum=0.9,
        augment_flip=True,
        augment_crop_pad=6,
        weight_decay=1e-4,
        label_smoothing=0.05,
    ),
}

# --cpu_replicas above this many times the usable cores is refused: every logical device runs
# its share of every step on the same cores, and 64 replicas on 2 cores took over 15 minutes for
# their first step. 4x still lets a laptop run the 8-replica code path of an 8-GPU machine.
MAX_REPLICAS_PER_CORE = 4


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_values(config: TrainConfig, cores: int | None = None) -> None:
    """ValueError naming the first field out of its bounds or choices (as its flag) and what is
    allowed, settings the schedule cannot use, or --cpu_replicas far above the `cores` (default:
    the usable cores)."""
    for p in PARAMS.values():
        value = p.get(config)
        if value is None:
            continue
        if p.choices and value not in p.choices:
            raise ValueError(f"--{p.flag}={value}: must be one of {', '.join(p.choices)}")
        items = value if isinstance(value, tuple) else (value,)
        if p.bounds and not all(p.bounds.admits(float(v)) for v in items):
            raise ValueError(f"--{p.flag}={','.join(str(v) for v in items)}: must be {p.bounds.text()}")
    schedule = optim.SCHEDULES[config.optim.schedule]
    if schedule.check:
        schedule.check(config.optim)
    cores = cores or usable_cores()
    replicas = config.runtime.cpu_replicas
    if replicas > MAX_REPLICAS_PER_CORE * cores:
        raise ValueError(
            f"--cpu_replicas={replicas}: more than {MAX_REPLICAS_PER_CORE}x the {cores} CPU "
            f"cores this process may use; every logical device computes its share of each step on "
            f"those cores: use at most {MAX_REPLICAS_PER_CORE * cores} (--cpu_replicas={cores} to "
            "use each core once)"
        )


def flat_overrides(overrides: dict[str, Any], origin: str) -> dict[str, Any]:
    """Flat keys (flag names) and sections ({"optim": {"learning_rate": 0.1}}) as {flag: value};
    ValueError naming unknown keys, or a field given twice."""
    flat: dict[str, Any] = {}
    unknown = []

    def put(flag: str, value: Any, key: str) -> None:
        if flag in flat:
            raise ValueError(f"{origin}: {key} is given twice (flat and in its section): keep one")
        flat[flag] = value

    for key, value in overrides.items():
        if key in SECTIONS and isinstance(value, dict):
            for name, v in value.items():
                p = _BY_PATH.get(f"{key}.{name}")
                if p is None:
                    unknown.append(f"{key}.{name}")
                else:
                    put(p.flag, v, f"{key}.{name}")
        elif key in PARAMS or key in LEGACY_KEYS:
            put(key, value, key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{origin}: unknown config keys {sorted(unknown)}; known: {sorted(PARAMS)}, flat or in their "
            f"sections ({', '.join(SECTIONS)})"
        )
    return flat


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], origin: str) -> TrainConfig:
    """`config` with the fields of `overrides` (flat, nested or both) replaced."""
    flat = flat_overrides(overrides, origin)
    legacy_decay = flat.pop("decay_rate", None)
    sections: dict[str, dict[str, Any]] = {}
    for flag, value in flat.items():
        p = PARAMS[flag]
        sections.setdefault(p.section, {})[p.name] = p.coerce(value, origin)
    config = dataclasses.replace(
        config, **{s: dataclasses.replace(getattr(config, s), **fields) for s, fields in sections.items()}
    )
    if legacy_decay is not None:
        field = LEGACY_DECAY_RATE.get(config.optim.schedule)
        if field:  # the other schedules never read it
            rate = PARAMS[field].coerce(legacy_decay, origin)
            config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, **{field: rate}))
    return config


def load_file(path: str) -> dict[str, Any]:
    """A YAML or JSON mapping of config fields, from any storage (local, gs://, ...)."""
    text = fs.read_text(path)
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys")
    return data


def build_config(preset: str = "", config_file: str = "", overrides: dict[str, Any] | None = None) -> TrainConfig:
    config = TrainConfig()
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown --preset={preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        config = apply_overrides(config, PRESETS[preset], f"preset {preset}")
    if config_file:
        config = apply_overrides(config, load_file(config_file), config_file)
    return apply_overrides(config, overrides or {}, "flags")


def save(config: TrainConfig, path: str) -> None:
    fs.write_json(path, config.to_json())


def load(path: str) -> TrainConfig:
    """A saved config.json: nested, or flat as runs made before the sections wrote it."""
    return apply_overrides(TrainConfig(), load_file(path), path)


def identity_changes(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """The identity fields (by flag name) that differ, as `flag: old -> new`."""
    params = [_BY_PATH[path] for path in IDENTITY_FIELDS]
    return [f"{p.flag}: {p.get(saved)!r} -> {p.get(new)!r}" for p in params if p.get(saved) != p.get(new)]
