"""VGG-11/13/16/19 (Simonyan & Zisserman, ICLR 2015), configurations A, B, D, E.

Blocks of 3x3 'same' convolutions, each block closed by a 2x2 max-pool, then two FC-4096 layers
with dropout 0.5. The `_bn` variants insert batch normalisation after each convolution (convs
keep their bias, as in torchvision, so trainable counts equal torchvision's).
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L
from trainer.models.registry import ModelSpec, register_model

# depth -> ((convs, filters) per block); the paper's Table 1.
VGG_SPECS = {
    11: ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    13: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    16: ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    19: ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


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
    if not opts.include_top:
        return L.global_pool(x, opts.pooling, name="features_pool")
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = L.dense(x, fc_units, opts, name=f"fc{i}", activation="relu")
        x = L.dropout(x, opts.dropout, name=f"fc{i}_dropout")
    return L.logits(x, opts)


for _depth, _stages in VGG_SPECS.items():
    for _bn in (False, True):
        register_model(
            ModelSpec(
                name=f"vgg{_depth}{'_bn' if _bn else ''}",
                family="vgg",
                default_input_shape=(224, 224, 3),
                min_input_size=32,
                default_dropout=0.5,
                reference="Simonyan & Zisserman, ICLR 2015 (arXiv:1409.1556)",
                keras_application=None if _bn or _depth < 16 else f"VGG{_depth}",
            ),
            build_vgg,
            stages=_stages,
            batch_norm=_bn,
        )
