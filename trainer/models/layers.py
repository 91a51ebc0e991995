"""Building blocks shared by every family: conv/BN/ReLU, heads, the option-A shortcut layer.

Every helper takes an explicit `name`, so two builds of one model have identical layer names
(Keras would otherwise number layers with a process-wide counter).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Options every builder honours, resolved by `registry.create_model`."""

    num_classes: int = 10
    include_top: bool = True
    pooling: str | None = None
    dropout: float = 0.0
    weight_decay: float = 0.0
    kernel_initializer: str = "he_normal"
    aux_heads: bool = False

    def regularizer(self):
        # L2 on kernels only, so the penalty shows up in `model.losses`; biases/BN are not decayed.
        return keras.regularizers.L2(self.weight_decay) if self.weight_decay else None

    def kernel_kwargs(self) -> dict:
        return {
            "kernel_initializer": self.kernel_initializer,
            "kernel_regularizer": self.regularizer(),
        }


def conv(x, filters, kernel_size, opts: BuildOptions, *, name, padding="same", **conv_kwargs):
    """A Conv2D with the model's initializer and weight decay; `conv_kwargs` are Conv2D's own
    (strides, use_bias, groups, activation)."""
    return layers.Conv2D(filters, kernel_size, padding=padding, name=name, **conv_kwargs, **opts.kernel_kwargs())(x)


def batch_norm(x, *, name, epsilon=1e-3, scale=True):
    return layers.BatchNormalization(axis=-1, epsilon=epsilon, scale=scale, name=name)(x)


def relu(x, *, name):
    return layers.Activation("relu", name=name)(x)


def conv_bn(
    x,
    filters,
    kernel_size,
    opts: BuildOptions,
    *,
    name,
    use_bias=False,
    epsilon=1e-3,
    scale=True,
    activate=True,
    **conv_kwargs,
):
    """Conv -> BN (-> ReLU), named `{name}_conv`, `{name}_bn`, `{name}_relu`; `conv_kwargs` go to `conv`."""
    x = conv(x, filters, kernel_size, opts, name=f"{name}_conv", use_bias=use_bias, **conv_kwargs)
    x = batch_norm(x, name=f"{name}_bn", epsilon=epsilon, scale=scale)
    return relu(x, name=f"{name}_relu") if activate else x


def dense(x, units, opts: BuildOptions, *, name, activation=None, use_bias=True):
    return layers.Dense(units, activation=activation, use_bias=use_bias, name=name, **opts.kernel_kwargs())(x)


def dropout(x, rate, *, name):
    return layers.Dropout(rate, name=name)(x) if rate else x


def logits(x, opts: BuildOptions, *, name="predictions", use_bias=True):
    """The classifier: a linear Dense kept in float32 under a mixed-precision policy."""
    return layers.Dense(opts.num_classes, use_bias=use_bias, dtype="float32", name=name, **opts.kernel_kwargs())(x)


def global_pool(x, pooling, *, name):
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=name)(x)
    return x


def flatten_head(x, opts: BuildOptions, *, hidden=(), units=0, dropout_name="top_dropout", logits_name="predictions"):
    """The Flatten-style top (AlexNet, VGG, seeds 000-002): Flatten, then for each (dense name,
    dropout name) in `hidden` a ReLU Dense of `units` and its dropout (without `hidden`, one
    dropout named `dropout_name`), then the logits. With include_top=False, the backbone's pooling.
    """
    if not opts.include_top:
        return global_pool(x, opts.pooling, name="features_pool")
    x = layers.Flatten(name="flatten")(x)
    for dense_name, drop_name in hidden:
        x = dense(x, units, opts, name=dense_name, activation="relu")
        x = dropout(x, opts.dropout, name=drop_name)
    if not hidden:
        x = dropout(x, opts.dropout, name=dropout_name)
    return logits(x, opts, name=logits_name)


def gap_head(x, opts: BuildOptions, *, use_bias=True):
    """Top of the GAP-style families; with include_top=False, the backbone's pooling instead."""
    if not opts.include_top:
        return global_pool(x, opts.pooling, name="features_pool")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = dropout(x, opts.dropout, name="top_dropout")
    return logits(x, opts, use_bias=use_bias)


@keras.saving.register_keras_serializable(package="trainer_models")
class ChannelPad(keras.layers.Layer):
    """Zero-pads the channel axis: the parameter-free "option A" shortcut of He et al. (2016)."""

    def __init__(self, pad, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        return keras.ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.pad]])

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (*input_shape[:-1], None if channels is None else channels + self.pad)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}
