"""VGG-11/13/16/19 (Simonyan & Zisserman, ICLR 2015), configurations A, B, D, E.

Blocks of 3x3 'same' convolutions, each block closed by a 2x2 max-pool, then two FC-4096 layers
with dropout 0.5. The `_bn` variants insert batch normalisation after each convolution (convs
keep their bias, as in torchvision, so trainable counts equal torchvision's). The configurations
are the spec table `specs.VGG_SPECS`.
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L


def build_vgg(inputs, opts: L.BuildOptions, *, stages, batch_norm=False, fc_units=4096):
    """VGG with Keras-style names: block1_conv1 ... block5_pool, fc1, fc2, predictions."""
    x = inputs
    for b, (convs, filters) in enumerate(stages, start=1):
        for c in range(1, convs + 1):
            name = f"block{b}_conv{c}"
            x = L.conv(x, filters, 3, opts, name=name, activation=None if batch_norm else "relu")
            if batch_norm:
                x = L.batch_norm(x, name=f"{name}_bn", epsilon=1e-5)
                x = L.relu(x, name=f"{name}_relu")
        x = layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
    return L.flatten_head(x, opts, hidden=(("fc1", "fc1_dropout"), ("fc2", "fc2_dropout")), units=fc_units)
