"""Typed training configuration, named presets for the seed recipes, and JSON/YAML I/O.

Precedence (lowest first): dataclass defaults < --preset < --config_file < explicit flags.
The final config is saved as <run_dir>/config.json; a resumed run compares the fields in
`IDENTITY_FIELDS` with the saved ones and refuses a change unless --force.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import yaml

from storage import fs


@dataclasses.dataclass
class TrainConfig:
    # model
    model: str = "cifar_resnet20"
    image_size: int = 0  # 0: the model's default input size
    dropout: float | None = None
    weight_decay: float | None = None  # L2 on kernels (None: the model's default, e.g. 5e-4 for seed004)
    bn_momentum: float | None = None  # override every BatchNormalization's momentum (small datasets: 0.9)
    sync_bn: bool = False  # batch statistics over the global batch, across replicas
    aux_heads: bool = False
    # data
    data_dir: str = ""
    tfds_name: str = ""
    tfds_data_dir: str = ""
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    shuffle_buffer: int = 2048
    cache: bool = False  # keep decoded images in memory after the first epoch
    augment_flip: bool = True
    augment_crop_pad: int = 0  # random crop after padding by this many pixels (CIFAR style: 4)
    mixup_alpha: float = 0.0  # > 0: mixup with Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: CutMix (with mixup too: one of the two per batch)
    normalization: str = "dataset"  # dataset (computed) | imagenet | cifar10_seed004 | unit
    # optimisation
    epochs: int = 10
    batch_size: int = 64  # global, split across replicas
    optimizer: str = "sgd"  # sgd | adam | adamw | rmsprop
    learning_rate: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "constant"  # constant | step | cosine | exponential | plateau
    boundaries: tuple[int, ...] = ()  # step schedule: epochs where the LR changes
    values: tuple[float, ...] = ()  # step schedule: LR per interval (len(boundaries)+1)
    warmup_epochs: float = 0.0
    decay_rate: float = 0.1  # exponential: per epoch; plateau: factor
    plateau_patience: int = 5
    min_learning_rate: float = 0.0
    label_smoothing: float = 0.0
    clip_norm: float = 0.0
    # runtime
    strategy: str = "auto"  # auto | one_device | mirrored | multi_worker
    cpu_replicas: int = 0
    num_gpus: int = -1  # -1: all visible
    precision: str = "float32"
    jit: bool = False
    seed: int = 0
    deterministic: bool = False
    log_every: int = 20
    checkpoint_every: int = 0  # steps; 0: only at epoch ends
    max_to_keep: int = 3
    recover_from_nan: bool = False  # roll back to the last checkpoint with a lower LR instead of stopping
    nan_lr_factor: float = 0.1  # LR multiplier applied at each NaN roll-back
    max_nan_recoveries: int = 3
    stop_grace_seconds: float = 20.0  # after SIGTERM, exit by then even if the step in progress has not returned

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


IDENTITY_FIELDS = ("model", "image_size", "aux_heads", "data_dir", "tfds_name", "train_split", "normalization")

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


# Allowed values of every numeric field, checked on the final config (flags, preset and file
# alike) before any work: (lowest, highest, lowest excluded, highest excluded); None: unbounded.
# A value out of range would train on (negative learning rate), crash later with a traceback
# (negative seed, shuffle buffer 0) or hang (negative replicas are read as "all").
BOUNDS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "image_size": (0, None, False, False),
    "dropout": (0, 1, False, True),
    "weight_decay": (0, None, False, False),
    "bn_momentum": (0, 1, False, False),
    "shuffle_buffer": (1, None, False, False),
    "augment_crop_pad": (0, None, False, False),
    "mixup_alpha": (0, None, False, False),
    "cutmix_alpha": (0, None, False, False),
    "epochs": (1, None, False, False),
    "batch_size": (1, None, False, False),
    "learning_rate": (0, None, True, False),
    "momentum": (0, 1, False, False),
    "boundaries": (0, None, False, False),
    "values": (0, None, False, False),
    "warmup_epochs": (0, None, False, False),
    "decay_rate": (0, None, True, False),
    "plateau_patience": (0, None, False, False),
    "min_learning_rate": (0, None, False, False),
    "label_smoothing": (0, 1, False, True),
    "clip_norm": (0, None, False, False),
    "cpu_replicas": (0, None, False, False),
    "num_gpus": (-1, None, False, False),
    "seed": (0, None, False, False),
    "log_every": (0, None, False, False),
    "checkpoint_every": (0, None, False, False),
    "max_to_keep": (1, None, False, False),
    "nan_lr_factor": (0, 1, True, True),
    "max_nan_recoveries": (0, None, False, False),
    "stop_grace_seconds": (0, None, True, False),
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


def _bound_text(low, high, low_open: bool, high_open: bool) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _in_bounds(v: float, low, high, low_open: bool, high_open: bool) -> bool:
    if not math.isfinite(v):  # nan compares false with everything; inf is no rate, size or factor
        return False
    above = v > low if low_open else v >= low
    below = high is None or (v < high if high_open else v <= high)
    return above and below


def check_values(config: TrainConfig, cores: int | None = None) -> None:
    """ValueError naming the first field out of its bounds (as its flag) and the bound, or
    --cpu_replicas far above the `cores` (default: the usable cores)."""
    for name, bounds in BOUNDS.items():
        value = getattr(config, name)
        if value is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        if not all(_in_bounds(float(v), *bounds) for v in items):
            shown = ",".join(str(v) for v in items)
            raise ValueError(f"--{name}={shown}: must be {_bound_text(*bounds)}")
    cores = cores or usable_cores()
    if config.cpu_replicas > MAX_REPLICAS_PER_CORE * cores:
        raise ValueError(
            f"--cpu_replicas={config.cpu_replicas}: more than {MAX_REPLICAS_PER_CORE}x the {cores} CPU "
            f"cores this process may use; every logical device computes its share of each step on "
            f"those cores: use at most {MAX_REPLICAS_PER_CORE * cores} (--cpu_replicas={cores} to "
            "use each core once)"
        )


def field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    if isinstance(value, list) or (str(f.type).startswith("tuple") and isinstance(value, (list, tuple))):
        return tuple(value)
    return value


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], origin: str) -> TrainConfig:
    unknown = set(overrides) - field_names()
    if unknown:
        raise ValueError(f"{origin}: unknown config keys {sorted(unknown)}; known: {sorted(field_names())}")
    return dataclasses.replace(config, **{k: _coerce(k, v) for k, v in overrides.items()})


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
    return apply_overrides(TrainConfig(), load_file(path), path)


def identity_changes(saved: TrainConfig, new: TrainConfig) -> list[str]:
    return [
        f"{k}: {getattr(saved, k)!r} -> {getattr(new, k)!r}"
        for k in IDENTITY_FIELDS
        if getattr(saved, k) != getattr(new, k)
    ]
