"""Model statistics: parameter counts and FLOPs (TensorFlow's profiler), and the --list rows."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from trainer.models.registry import create_model, get_spec


@dataclasses.dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int
    non_trainable: int


def count_params(model: keras.Model) -> ParamCount:
    """Total, trainable and non-trainable parameters, as `model.summary()` counts them."""
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    non_trainable = int(sum(np.prod(v.shape) for v in model.non_trainable_weights))
    return ParamCount(trainable + non_trainable, trainable, non_trainable)


def count_flops(model: keras.Model, batch_size: int = 1) -> int:
    """Floating-point operations of one inference forward pass, by TensorFlow's profiler.

    The profiler counts a multiply-add as 2 FLOPs. The input must have a static H, W, C.
    Keras runs a grouped convolution on CPU inside a nested XLA-compiled function, which the
    profiler does not descend into; those convolutions are added from their layer shapes, the
    way the profiler counts a Conv2D (2 x output elements x kernel elements per group).
    """
    spec = tf.TensorSpec((batch_size, *model.inputs[0].shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    stats = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options)
    return int(stats.total_float_ops) + _grouped_conv_flops(model, batch_size)


def _grouped_conv_flops(model: keras.Model, batch_size: int) -> int:
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1:
            _, out_h, out_w, out_c = layer.output.shape
            kernel_h, kernel_w, in_per_group, _ = layer.kernel.shape
            flops += 2 * batch_size * out_h * out_w * out_c * kernel_h * kernel_w * in_per_group
    return flops


@dataclasses.dataclass(frozen=True)
class ModelRow:
    name: str
    family: str
    params: int
    flops: int | None
    input_shape: tuple[int, int, int]
    num_classes: int
    reference: str


def describe(name: str, with_flops: bool = True) -> ModelRow:
    """Builds `name` at its default input and class count, and measures it."""
    spec = get_spec(name)
    model = create_model(name, num_classes=spec.num_classes)
    row = ModelRow(
        name=name,
        family=spec.family,
        params=count_params(model).total,
        flops=count_flops(model) if with_flops else None,
        input_shape=spec.default_input_shape,
        num_classes=spec.num_classes,
        reference=spec.reference,
    )
    del model
    keras.backend.clear_session()
    return row


def format_table(rows) -> str:
    header = ("name", "family", "params", "GFLOPs", "input", "classes", "reference")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r.name,
                r.family,
                f"{r.params:,}",
                "-" if r.flops is None else f"{r.flops / 1e9:.2f}",
                "x".join(map(str, r.input_shape)),
                str(r.num_classes),
                r.reference,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
