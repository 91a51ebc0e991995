"""The model registry: `ModelSpec`, `register_model`, `create_model`, `list_models`, `get_spec`.

A variant is registered with its spec (metadata, with parameter and FLOP counts pinned from a
real build), its family's builder and the builder's keyword arguments (the variant's row of the
family's spec table; trainer/models/specs.py registers the zoo). Builders have the signature
`builder(inputs, opts: BuildOptions, **config) -> outputs`; their keyword-only parameters are the
overrides `create_model` accepts.

This module and the spec tables import no TensorFlow: a builder may be named as
"module:function", imported when a model of its family is first created, so listing the zoo
(`python -m trainer.models --list`) takes a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from absl import logging

if TYPE_CHECKING:
    import keras

POOLINGS = (None, "avg", "max")
# Overrides every model accepts in addition to its builder's keyword-only parameters.
COMMON_OVERRIDES = ("kernel_initializer",)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one registered model.

    Attributes:
      name: registry name.
      family: builder family ("resnet", "vgg", "seed", ...).
      default_input_shape: (H, W, C) of the reference configuration.
      reference: paper or seed article the architecture follows.
      min_input_size: smallest H and W the model's pooling allows.
      aux_loss_weights: loss weights of the auxiliary heads (main head weighs 1.0); empty when
        the model has none.
      num_classes: class count of the reference configuration (the parameter tables use it).
      keras_application: name of the identical `keras.applications` model, if there is one.
      default_dropout: dropout used when `create_model(dropout=None)`.
      default_weight_decay: L2 factor used when `create_model(weight_decay=None)`.
      params, trainable_params: parameters (Keras's count: BN moving statistics are non-trainable
        parameters) at default_input_shape with num_classes classes; None if not pinned.
      flops: FLOPs of one forward pass of one image at default_input_shape (TF profiler: a
        multiply-add is 2 FLOPs); None if not pinned. The pinned counts are what
        `python -m trainer.models --measure=NAME` measures, and the tests check them against builds.
    """

    name: str
    family: str
    default_input_shape: tuple[int, int, int]
    reference: str
    min_input_size: int = 32
    aux_loss_weights: tuple[float, ...] = ()
    num_classes: int = 1000
    keras_application: str | None = None
    default_dropout: float = 0.0
    default_weight_decay: float = 0.0
    params: int | None = None
    trainable_params: int | None = None
    flops: int | None = None

    @property
    def supports_aux_heads(self) -> bool:
        return bool(self.aux_loss_weights)


@dataclasses.dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    builder_ref: Callable[..., Any] | str  # a function, or "module:function" imported on first use
    config: tuple[tuple[str, Any], ...]

    @property
    def builder(self) -> Callable[..., Any]:
        if callable(self.builder_ref):
            return self.builder_ref
        module, _, attr = self.builder_ref.partition(":")
        builder = getattr(importlib.import_module(module), attr)
        _check_config(self.spec.name, builder, dict(self.config))
        return builder

    def builder_options(self) -> tuple[str, ...]:
        return _keyword_only(self.builder)

    def accepted_overrides(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.builder_options()) | set(COMMON_OVERRIDES)))


def _keyword_only(fn) -> tuple[str, ...]:
    params = inspect.signature(fn).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _check_config(name: str, builder, config: dict) -> None:
    unknown = set(config) - set(_keyword_only(builder))
    if unknown:
        raise TypeError(f"{builder.__name__} does not take {sorted(unknown)} (model {name!r}).")


class UnknownOverrideError(TypeError, ValueError):
    """An override the model's builder does not accept (both a TypeError and a ValueError)."""


_REGISTRY: dict[str, _Entry] = {}


def register_model(spec: ModelSpec, builder: Callable[..., Any] | str | None = None, **config):
    """Adds a model to the registry; without `builder`, a decorator registering the function.

    Args:
      spec: the model's metadata; `spec.name` must not be registered yet.
      builder: the family builder, `builder(inputs, opts, **config) -> outputs`, or its
        "module:function" name (imported, and `config` checked against it, when first used).
      **config: the builder's keyword arguments for this variant.

    Returns:
      The spec, or (decorator form) the decorated builder.
    """
    if builder is None:

        def decorator(fn):
            register_model(spec, fn, **config)
            return fn

        return decorator
    if spec.name in _REGISTRY:
        raise ValueError(f"Model {spec.name!r} is already registered.")
    if callable(builder):
        _check_config(spec.name, builder, config)
    elif not isinstance(builder, str) or builder.count(":") != 1:
        raise TypeError(f"builder must be a function or 'module:function'. Received: builder={builder!r}")
    _REGISTRY[spec.name] = _Entry(spec, builder, tuple(sorted(config.items())))
    return spec


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted; only those of `family` if given (ValueError if no model has it)."""
    if family is not None and family not in list_families():
        raise ValueError(f"Unknown family {family!r}. Known families: {', '.join(list_families())}.")
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.spec.family == family)


def list_families() -> list[str]:
    """The families of the registered models, sorted."""
    return sorted({e.spec.family for e in _REGISTRY.values()})


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(list_models())}.") from None


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of a registered model; ValueError listing the known names otherwise."""
    return _entry(name).spec


def accepted_overrides(name: str) -> tuple[str, ...]:
    """The keyword overrides `create_model(name, ...)` accepts."""
    return _entry(name).accepted_overrides()


def _resolve_input_shape(spec: ModelSpec, input_shape) -> tuple:
    shape = tuple(spec.default_input_shape if input_shape is None else input_shape)
    if len(shape) != 3 or not shape[2]:
        raise ValueError(
            f"input_shape must be (height, width, channels), channels-last. Received: input_shape={input_shape}"
        )
    for size in shape[:2]:
        if size is not None and size < spec.min_input_size:
            raise ValueError(
                f"Input too small for {spec.name}: its pooling needs height and width >= "
                f"{spec.min_input_size}. Received: input_shape={shape}"
            )
    return shape


def create_model(
    name: str,
    num_classes: int = 10,
    input_shape=None,
    include_top: bool = True,
    pooling: str | None = None,
    dropout: float | None = None,
    weight_decay: float | None = None,
    aux_heads: bool = False,
    **overrides,
) -> keras.Model:
    """Builds a registered model (the first model of a family imports Keras and its builder).

    Args:
      name: registry name (see `list_models()`).
      num_classes: width of the logits.
      input_shape: (H, W, C), channels-last; None for the spec's default. H and W may be None
        for the models without a Flatten head.
      include_top: False returns the backbone (feature map, or pooled features with `pooling`).
      pooling: None, "avg" or "max"; only with include_top=False.
      dropout: dropout rate before the classifier(s); None for the spec's default.
      weight_decay: L2 factor on every kernel (`kernel_regularizer`); None for the spec's
        default (5e-4 for seed004_resnext, 0 elsewhere).
      aux_heads: GoogLeNet only: also return the two auxiliary logits, as
        [main, aux1, aux2]; weigh their losses with `spec.aux_loss_weights`.
      **overrides: the family builder's keyword-only arguments (`accepted_overrides(name)`),
        plus `kernel_initializer` ("he_normal" by default).

    Returns:
      A `keras.Model` mapping float32 images (already normalised) to float32 logits.
    """
    import keras

    from trainer.models.layers import BuildOptions

    entry = _entry(name)
    spec = entry.spec
    accepted = entry.accepted_overrides()
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise UnknownOverrideError(
            f"Unknown override(s) {unknown} for model {name!r}. Accepted: {', '.join(accepted)}."
        )
    shape = _resolve_input_shape(spec, input_shape)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: pooling={pooling!r}")
    if include_top and pooling is not None:
        raise ValueError(
            "pooling applies to the backbone only: pass include_top=False. "
            f"Received: pooling={pooling!r} with include_top=True"
        )
    if include_top and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int. Received: num_classes={num_classes}")
    if aux_heads and not spec.supports_aux_heads:
        with_aux = [n for n in list_models() if _REGISTRY[n].spec.supports_aux_heads]
        raise ValueError(f"{name} has no auxiliary heads (models with them: {with_aux}).")
    if aux_heads and not include_top:
        raise ValueError("aux_heads=True needs include_top=True.")
    dropout = spec.default_dropout if dropout is None else float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout}")
    weight_decay = spec.default_weight_decay if weight_decay is None else float(weight_decay)
    if weight_decay < 0 or not math.isfinite(weight_decay):
        raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay}")

    opts = BuildOptions(
        num_classes=num_classes,
        include_top=include_top,
        pooling=pooling,
        dropout=dropout,
        weight_decay=weight_decay,
        aux_heads=aux_heads,
        kernel_initializer=overrides.pop("kernel_initializer", "he_normal"),
    )
    config = {**dict(entry.config), **overrides}
    inputs = keras.Input(shape=shape, name="input")
    outputs = entry.builder(inputs, opts, **config)
    model = keras.Model(inputs, outputs, name=name)
    logging.debug("Built %s: input %s, %d parameters.", name, shape, model.count_params())
    return model


def without_aux_heads(model: keras.Model) -> keras.Model:
    """The inference/export view of a model built with aux_heads=True: main logits only.

    Shares the weights; a model with a single output is returned unchanged.
    """
    import keras

    if len(model.outputs) == 1:
        return model
    return keras.Model(model.input, model.outputs[0], name=model.name)


def load_model(path: str) -> keras.Model:
    """`keras.saving.load_model` for a model of the zoo (a run's model.keras): registers the zoo's
    custom layers first (they live with the builders, which importing the registry does not load)."""
    import keras

    from trainer.models import layers  # noqa: F401  registers ChannelPad with Keras

    return keras.saving.load_model(path)
