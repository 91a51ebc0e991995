"""Model statistics: parameter counts and FLOPs (TensorFlow's profiler) of a built model."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf


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
