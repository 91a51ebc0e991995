"""Optimizers and learning-rate schedules: two registries, built from the config's `optim` section.

An optimizer or a schedule is one registered unit (`@register_optimizer`, `@register_schedule`)
carrying the help text `--optimizer` and `--schedule` show; the registries' names are those
flags' choices. Nothing here imports TensorFlow or Keras at import time (the builders do when
they run), so `python -m trainer.train --help` never loads them.

Schedules are Keras's own where one fits (`PiecewiseConstantDecay`, `CosineDecay`,
`ExponentialDecay`), made per step from the epochs the recipes state ("0.01, then 0.001 from
epoch 100"). `LearningRate` puts the same linear warmup in front of every schedule (the schedule
starts when the warmup ends, as Keras's `CosineDecay(warmup_steps=)` does), the reduce-on-plateau
scale on top and the `--min_learning_rate` floor under it; the loop sets the optimizer's rate
variable from it before each step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from trainer.config import OptimConfig


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """`build(config, **keras_kwargs)` -> a Keras optimizer. `decoupled_decay`: None when the
    optimizer leaves weight decay to the model (kernel L2 in the loss); else the optimizer decays
    the weights itself with --weight_decay, and this is its default."""

    build: Callable[..., Any]
    help: str
    decoupled_decay: float | None = None


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    """`build(config, steps_per_epoch)` -> a function of the step (counted from the warmup's end)
    giving the rate (a Keras LearningRateSchedule or a plain function); `check(config)` raises
    ValueError on settings the schedule cannot use; `on_plateau`: scaled by reduce-on-plateau."""

    build: Callable[[OptimConfig, int], Callable[[int], Any]]
    help: str
    check: Callable[[OptimConfig], None] | None = None
    on_plateau: bool = False


OPTIMIZERS: dict[str, OptimizerSpec] = {}
SCHEDULES: dict[str, ScheduleSpec] = {}


def _register(table: dict, kind: str, name: str, spec) -> None:
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered")
    table[name] = spec


def register_optimizer(name: str, help: str, decoupled_decay: float | None = None):
    """Decorator: registers `build(config, **keras_kwargs)` as --optimizer=name."""

    def wrap(build):
        _register(OPTIMIZERS, "optimizer", name, OptimizerSpec(build, help, decoupled_decay))
        return build

    return wrap


def register_schedule(name: str, help: str, check=None, on_plateau: bool = False):
    """Decorator: registers `build(config, steps_per_epoch)` as --schedule=name."""

    def wrap(build):
        _register(SCHEDULES, "schedule", name, ScheduleSpec(build, help, check, on_plateau))
        return build

    return wrap


def lookup(table: dict, flag: str, name: str):
    """The registered entry, or ValueError listing the known names."""
    if name not in table:
        raise ValueError(f"unknown --{flag}={name!r}; known: {', '.join(table)}")
    return table[name]


# -- optimizers -----------------------------------------------------------------------------
@register_optimizer("sgd", "SGD with --momentum and --nesterov")
def _sgd(c: OptimConfig, **kw) -> keras.optimizers.Optimizer:
    import keras

    return keras.optimizers.SGD(momentum=c.momentum, nesterov=c.nesterov, **kw)


@register_optimizer("adam", "Adam")
def _adam(c: OptimConfig, **kw) -> keras.optimizers.Optimizer:
    import keras

    return keras.optimizers.Adam(**kw)


@register_optimizer("adamw", "Adam with decoupled weight decay", decoupled_decay=1e-4)
def _adamw(c: OptimConfig, **kw) -> keras.optimizers.Optimizer:
    import keras

    return keras.optimizers.AdamW(**kw)


@register_optimizer("rmsprop", "RMSprop with --momentum")
def _rmsprop(c: OptimConfig, **kw) -> keras.optimizers.Optimizer:
    import keras

    return keras.optimizers.RMSprop(momentum=c.momentum, **kw)


def kernel_l2(config: OptimConfig) -> float | None:
    """The L2 factor the model puts on its kernels: --weight_decay (None: the model's default), or
    0 when the optimizer decays the weights itself (adamw), so that weight decay is applied once."""
    spec = lookup(OPTIMIZERS, "optimizer", config.optimizer)
    return 0.0 if spec.decoupled_decay is not None else config.weight_decay


def decoupled_decay(config: OptimConfig) -> float | None:
    """The optimizer's own weight decay (adamw): --weight_decay, or the optimizer's stated default;
    None for optimizers that leave it to the model."""
    spec = lookup(OPTIMIZERS, "optimizer", config.optimizer)
    if spec.decoupled_decay is None:
        return None
    return spec.decoupled_decay if config.weight_decay is None else config.weight_decay


def weight_decay_help() -> str:
    """What --weight_decay means for each registered optimizer (the flag's help)."""
    l2 = [name for name, spec in OPTIMIZERS.items() if spec.decoupled_decay is None]
    parts = [f"{', '.join(l2)}: L2 factor on every kernel, added to the loss (default: the model's)"]
    parts += [
        f"{name}: its decoupled weight decay only, the model's kernel L2 is off (default {spec.decoupled_decay:g})"
        for name, spec in OPTIMIZERS.items()
        if spec.decoupled_decay is not None
    ]
    return "Weight decay, applied once. " + "; ".join(parts) + "."


def make_optimizer(config: OptimConfig) -> keras.optimizers.Optimizer:
    """The optimizer, with a variable learning rate the loop sets each step (`set_lr`)."""
    spec = lookup(OPTIMIZERS, "optimizer", config.optimizer)
    kw: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.clip_norm:
        kw["global_clipnorm"] = config.clip_norm
    if spec.decoupled_decay is not None:
        kw["weight_decay"] = decoupled_decay(config)
    return spec.build(config, **kw)


def set_lr(optimizer: keras.optimizers.Optimizer, lr: float) -> None:
    import tensorflow as tf

    optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))


# -- schedules ------------------------------------------------------------------------------
@register_schedule("constant", "--learning_rate throughout")
def _constant(c: OptimConfig, steps_per_epoch: int):
    return lambda step: c.learning_rate


def step_values(c: OptimConfig) -> tuple[float, ...]:
    """The step schedule's rate per interval: --values, or --learning_rate x --step_decay_rate^i."""
    return c.values or tuple(c.learning_rate * c.step_decay_rate**i for i in range(len(c.boundaries) + 1))


def _check_step(c: OptimConfig) -> None:
    n = len(c.boundaries)
    if c.values and len(c.values) != n + 1:
        raise ValueError(f"--values: the step schedule's {n} --boundaries need {n + 1} values, got {len(c.values)}")
    if list(c.boundaries) != sorted(set(c.boundaries)):
        raise ValueError(f"--boundaries={','.join(map(str, c.boundaries))}: must increase")


@register_schedule(
    "step",
    "--values (default: --learning_rate times --step_decay_rate per boundary), changing at the --boundaries epochs",
    check=_check_step,
)
def _step(c: OptimConfig, steps_per_epoch: int):
    import keras

    values = step_values(c)
    if not c.boundaries:
        return lambda step: values[0]
    # Keras keeps values[i] while step <= boundaries[i]: the first step of epoch b takes the next value.
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [b * steps_per_epoch - 1 for b in c.boundaries], [float(v) for v in values]
    )


@register_schedule("cosine", "cosine decay from --learning_rate to --min_learning_rate at the last epoch")
def _cosine(c: OptimConfig, steps_per_epoch: int):
    import keras

    steps = max(round((c.epochs - c.warmup_epochs) * steps_per_epoch), 1)
    alpha = min(c.min_learning_rate / c.learning_rate, 1.0)  # Keras's floor, as a fraction of the start
    return keras.optimizers.schedules.CosineDecay(c.learning_rate, steps, alpha=alpha)


@register_schedule("exponential", "--learning_rate times --exponential_decay_rate per epoch (smoothly, every step)")
def _exponential(c: OptimConfig, steps_per_epoch: int):
    import keras

    return keras.optimizers.schedules.ExponentialDecay(c.learning_rate, steps_per_epoch, c.exponential_decay_rate)


@register_schedule(
    "plateau",
    "--learning_rate, times --plateau_factor after each --plateau_patience epochs without a lower validation loss",
    on_plateau=True,
)
def _plateau(c: OptimConfig, steps_per_epoch: int):
    return _constant(c, steps_per_epoch)


def schedules_help() -> str:
    return "; ".join(f"{name}: {spec.help}" for name, spec in SCHEDULES.items())


def optimizers_help() -> str:
    return "; ".join(f"{name}: {spec.help}" for name, spec in OPTIMIZERS.items())


class PlateauController:
    """Keras ReduceLROnPlateau's rule for the custom loop (seed 004 tried factor sqrt(0.1), patience
    5-10): after `patience` epochs without the validation loss falling by `min_delta`, the scale of
    the rate is multiplied by `factor`. Its state is checkpointed by the loop."""

    def __init__(self, factor: float, patience: int, min_delta: float = 1e-3):
        self.factor, self.patience, self.min_delta = factor, patience, min_delta
        self.best, self.wait, self.scale = math.inf, 0, 1.0

    def update(self, val_loss: float) -> float:
        """Takes an epoch's validation loss; returns the scale for the next epoch."""
        if val_loss < self.best - self.min_delta:
            self.best, self.wait = val_loss, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.scale *= self.factor
                self.wait = 0
        return self.scale

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "scale": self.scale}

    def load(self, state: dict) -> None:
        self.best, self.wait, self.scale = state["best"], state["wait"], state["scale"]


class LearningRate:
    """The learning rate of every step, as a float: a linear warmup over --warmup_epochs to the
    schedule's first rate, then the schedule (counted from the warmup's end), times the
    reduce-on-plateau scale, floored at --min_learning_rate. One wrapper for every schedule."""

    def __init__(self, config: OptimConfig, steps_per_epoch: int):
        spec = lookup(SCHEDULES, "schedule", config.schedule)
        if spec.check:
            spec.check(config)
        self._schedule = spec.build(config, steps_per_epoch)
        self._on_plateau = spec.on_plateau
        self.warmup_steps = round(config.warmup_epochs * steps_per_epoch)
        self.min_learning_rate = config.min_learning_rate
        self.plateau = PlateauController(config.plateau_factor, config.plateau_patience)

    def __call__(self, step: int) -> float:
        """The rate of the update that follows `step` completed steps."""
        if step < self.warmup_steps:
            return self._scheduled(0) * (step + 1) / self.warmup_steps
        return self._scheduled(step - self.warmup_steps)

    def _scheduled(self, step: int) -> float:
        return max(float(self._schedule(step)) * self.plateau.scale, self.min_learning_rate)

    def end_epoch(self, val_loss: float) -> None:
        """An epoch's validation loss: lowers the rate on a plateau (--schedule=plateau only)."""
        if self._on_plateau:
            self.plateau.update(val_loss)
