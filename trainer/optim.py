"""Optimizers and learning-rate schedules, built from the config.

Schedules are functions of the (fractional) epoch so that step schedules are written the
way the seed recipes state them ("0.01, then 0.001 from epoch 100"). `plateau` is driven
from the loop (validation loss) through `PlateauController`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "exponential", "plateau")


def lr_at(config, epoch: float) -> float:
    """The scheduled learning rate at a fractional epoch (plateau: the base rate)."""
    base = config.learning_rate
    if config.warmup_epochs and epoch < config.warmup_epochs:
        return base * (epoch + 1e-3) / config.warmup_epochs if config.schedule != "step" else base
    if config.schedule in ("constant", "plateau"):
        return base
    if config.schedule == "step":
        values = config.values or tuple(base * config.decay_rate**i for i in range(len(config.boundaries) + 1))
        if len(values) != len(config.boundaries) + 1:
            raise ValueError(
                f"step schedule: {len(config.boundaries)} boundaries need {len(config.boundaries) + 1} "
                f"values, got {len(values)}"
            )
        for b, v in zip(config.boundaries, values):
            if epoch < b:
                return v
        return values[-1]
    if config.schedule == "cosine":
        span = max(config.epochs - config.warmup_epochs, 1e-9)
        t = min(max(epoch - config.warmup_epochs, 0.0) / span, 1.0)
        return config.min_learning_rate + (base - config.min_learning_rate) * 0.5 * (1 + math.cos(math.pi * t))
    if config.schedule == "exponential":
        return max(base * config.decay_rate ** (epoch - config.warmup_epochs), config.min_learning_rate)
    raise ValueError(f"unknown --schedule={config.schedule!r}; known: {', '.join(SCHEDULES)}")


def make_optimizer(config) -> keras.optimizers.Optimizer:
    """The optimizer with a variable learning rate the loop sets each step."""
    kw = {"learning_rate": config.learning_rate}
    if config.clip_norm:
        kw["global_clipnorm"] = config.clip_norm
    name = config.optimizer
    if name == "sgd":
        return keras.optimizers.SGD(momentum=config.momentum, nesterov=config.nesterov, **kw)
    if name == "adam":
        return keras.optimizers.Adam(**kw)
    if name == "adamw":
        return keras.optimizers.AdamW(weight_decay=config.weight_decay or 1e-4, **kw)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=config.momentum, **kw)
    raise ValueError(f"unknown --optimizer={name!r}; known: {', '.join(OPTIMIZERS)}")


class PlateauController:
    """ReduceLROnPlateau for the custom loop (seed 004 tried factor sqrt(0.1), patience 5-10)."""

    def __init__(self, factor: float, patience: int, min_lr: float, min_delta: float = 1e-3):
        self.factor, self.patience, self.min_lr, self.min_delta = factor, patience, min_lr, min_delta
        self.best, self.wait, self.scale = math.inf, 0, 1.0

    def update(self, val_loss: float, base_lr: float) -> float:
        if val_loss < self.best - self.min_delta:
            self.best, self.wait = val_loss, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.scale *= self.factor
                self.wait = 0
        return max(base_lr * self.scale, self.min_lr)

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "scale": self.scale}

    def load(self, state: dict) -> None:
        self.best, self.wait, self.scale = state["best"], state["wait"], state["scale"]


def set_lr(optimizer: keras.optimizers.Optimizer, lr: float) -> None:
    optimizer.learning_rate.assign(tf.cast(lr, optimizer.learning_rate.dtype))
