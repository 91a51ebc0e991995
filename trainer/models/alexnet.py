"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012).

Five convolutions and three fully connected layers. `groups=2` reproduces the paper's two-GPU
split (conv2, conv4 and conv5 see only their own tower's half of the channels), which gives the
paper's ~61M parameters; `groups=1` is the single-tower network of the seed article. The local
response normalisation of the paper is left out (later work found it does not help).
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L

# (name, filters, kernel, stride, grouped, pool after)
ALEXNET_CONVS = (
    ("conv1", 96, 11, 4, False, True),
    ("conv2", 256, 5, 1, True, True),
    ("conv3", 384, 3, 1, False, False),
    ("conv4", 384, 3, 1, True, False),
    ("conv5", 256, 3, 1, True, True),
)


def build_alexnet(inputs, opts: L.BuildOptions, *, groups=2, fc_units=4096):
    """AlexNet; conv1 is 'valid' (227 -> 55), the rest 'same', pools 3x3 stride 2 'valid'."""
    x = inputs
    for name, filters, kernel, stride, grouped, pool in ALEXNET_CONVS:
        x = L.conv(
            x,
            filters,
            kernel,
            opts,
            name=name,
            strides=stride,
            padding="valid" if stride > 1 else "same",
            groups=groups if grouped else 1,
            activation="relu",
        )
        if pool:
            x = layers.MaxPooling2D(3, strides=2, name=f"pool{name[-1]}")(x)
    return L.flatten_head(x, opts, hidden=(("fc6", "drop6"), ("fc7", "drop7")), units=fc_units)
