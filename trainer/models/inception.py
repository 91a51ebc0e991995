"""GoogLeNet / Inception v1 (Szegedy et al., CVPR 2015) and Inception v3 (Szegedy et al., CVPR 2016).

GoogLeNet: biased convolutions with ReLU, nine Inception modules, global average pooling,
dropout 0.4 and a linear classifier; LRN is left out. Its two auxiliary classifiers (after 4a
and 4d: 5x5/3 average pool, 1x1 conv 128, FC 1024, dropout 0.7) are built with aux_heads=True,
are weighted 0.3 in the loss and are dropped for inference (`registry.without_aux_heads`).

Inception v3: the factorised modules (5x5 -> two 3x3, nxn -> 1xn + nx1) with the layout and
parameter count of `keras.applications.InceptionV3` (convs without bias, BN without scale), plus
dropout 0.2 before the classifier as in TF-slim's reference (keep_prob 0.8; no parameters).
The v3 auxiliary head is not built.
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L

# Inception v1 modules: (name, (1x1, (3x3 reduce, 3x3), (5x5 reduce, 5x5), pool proj)); the
# paper's Table 1. A max-pool 3x3/2 closes stages 3 and 4.
GOOGLENET_STAGES = (
    (("3a", (64, (96, 128), (16, 32), 32)), ("3b", (128, (128, 192), (32, 96), 64))),
    (
        ("4a", (192, (96, 208), (16, 48), 64)),
        ("4b", (160, (112, 224), (24, 64), 64)),
        ("4c", (128, (128, 256), (24, 64), 64)),
        ("4d", (112, (144, 288), (32, 64), 64)),
        ("4e", (256, (160, 320), (32, 128), 128)),
    ),
    (("5a", (256, (160, 320), (32, 128), 128)), ("5b", (384, (192, 384), (48, 128), 128))),
)
GOOGLENET_AUX_AFTER = ("4a", "4d")
GOOGLENET_AUX_MIN_INPUT = 65  # the 5x5 'valid' aux pool needs a 5x5 map at stage 4 (input / 16)


def _inception_v1(x, widths, opts, name):
    c1, (c2r, c2), (c3r, c3), c4 = widths

    def conv(t, f, k, suffix):
        return L.conv(t, f, k, opts, name=f"{name}_{suffix}", activation="relu")

    b1 = conv(x, c1, 1, "1x1")
    b2 = conv(conv(x, c2r, 1, "3x3_reduce"), c2, 3, "3x3")
    b3 = conv(conv(x, c3r, 1, "5x5_reduce"), c3, 5, "5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv(b4, c4, 1, "pool_proj")
    return layers.Concatenate(axis=-1, name=name)([b1, b2, b3, b4])


def _aux_head(x, opts, name, padding, rate, widths):
    x = layers.AveragePooling2D(5, strides=3, padding=padding, name=f"{name}_pool")(x)
    x = L.conv(x, widths[0], 1, opts, name=f"{name}_conv", activation="relu")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = L.dense(x, widths[1], opts, name=f"{name}_fc", activation="relu")
    x = L.dropout(x, rate, name=f"{name}_dropout")
    return L.logits(x, opts, name=f"{name}_predictions")


def build_googlenet(inputs, opts: L.BuildOptions, *, aux_padding="valid", aux_dropout=0.7, aux_widths=(128, 1024)):
    """GoogLeNet; returns [main, aux1, aux2] logits when opts.aux_heads."""
    x = L.conv(inputs, 64, 7, opts, name="conv1_7x7", strides=2, activation="relu")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = L.conv(x, 64, 1, opts, name="conv2_3x3_reduce", activation="relu")
    x = L.conv(x, 192, 3, opts, name="conv2_3x3", activation="relu")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    aux = []
    for s, stage in enumerate(GOOGLENET_STAGES):
        for block, widths in stage:
            x = _inception_v1(x, widths, opts, f"inception{block}")
            if opts.aux_heads and block in GOOGLENET_AUX_AFTER:
                if aux_padding == "valid" and any(d is not None and d < 5 for d in x.shape[1:3]):
                    raise ValueError(
                        "Input too small for GoogLeNet's auxiliary heads: they need height and "
                        f"width >= {GOOGLENET_AUX_MIN_INPUT}. Received: input_shape="
                        f"{tuple(inputs.shape[1:])}"
                    )
                aux.append(_aux_head(x, opts, f"aux{len(aux) + 1}", aux_padding, aux_dropout, aux_widths))
        if s < len(GOOGLENET_STAGES) - 1:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{s + 3}")(x)
    x = L.gap_head(x, opts)
    return [x, *aux] if aux else x


# Inception v3. Stem rows: (name, filters, kernel, stride, padding) or a pool name.
INCEPTION_V3_STEM = (
    ("conv1", 32, 3, 2, "valid"),
    ("conv2", 32, 3, 1, "valid"),
    ("conv3", 64, 3, 1, "same"),
    "pool1",
    ("conv4", 80, 1, 1, "valid"),
    ("conv5", 192, 3, 1, "valid"),
    "pool2",
)
# (name, module type, argument): 35x35 "a" modules (pool projection width), 17x17 "c" modules
# (width of the factorised 7x7 branches), 8x8 "e" modules, and the two grid reductions.
INCEPTION_V3_BLOCKS = (
    ("mixed0", "a", 32),
    ("mixed1", "a", 64),
    ("mixed2", "a", 64),
    ("mixed3", "reduction_a", None),
    ("mixed4", "c", 128),
    ("mixed5", "c", 160),
    ("mixed6", "c", 160),
    ("mixed7", "c", 192),
    ("mixed8", "reduction_b", None),
    ("mixed9", "e", None),
    ("mixed10", "e", None),
)


def _v3_module(x, kind, arg, opts, name):
    def cb(t, filters, kernel, suffix, strides=1, padding="same"):
        return L.conv_bn(
            t, filters, kernel, opts, name=f"{name}_{suffix}", strides=strides, padding=padding, scale=False
        )

    def avg_pool(t):
        return layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_avgpool")(t)

    def max_pool(t):
        return layers.MaxPooling2D(3, strides=2, name=f"{name}_maxpool")(t)

    if kind == "a":
        branches = [
            cb(x, 64, 1, "b1x1"),
            cb(cb(x, 48, 1, "b5x5_1"), 64, 5, "b5x5_2"),
            cb(cb(cb(x, 64, 1, "b3x3dbl_1"), 96, 3, "b3x3dbl_2"), 96, 3, "b3x3dbl_3"),
            cb(avg_pool(x), arg, 1, "bpool"),
        ]
    elif kind == "reduction_a":
        branches = [
            cb(x, 384, 3, "b3x3", strides=2, padding="valid"),
            cb(cb(cb(x, 64, 1, "b3x3dbl_1"), 96, 3, "b3x3dbl_2"), 96, 3, "b3x3dbl_3", strides=2, padding="valid"),
            max_pool(x),
        ]
    elif kind == "c":
        b7 = cb(cb(cb(x, arg, 1, "b7x7_1"), arg, (1, 7), "b7x7_2"), 192, (7, 1), "b7x7_3")
        b7d = cb(x, arg, 1, "b7x7dbl_1")
        for i, (kernel, width) in enumerate([((7, 1), arg), ((1, 7), arg), ((7, 1), arg), ((1, 7), 192)], start=2):
            b7d = cb(b7d, width, kernel, f"b7x7dbl_{i}")
        branches = [cb(x, 192, 1, "b1x1"), b7, b7d, cb(avg_pool(x), 192, 1, "bpool")]
    elif kind == "reduction_b":
        b3 = cb(cb(x, 192, 1, "b3x3_1"), 320, 3, "b3x3_2", strides=2, padding="valid")
        b7 = cb(cb(cb(x, 192, 1, "b7x7x3_1"), 192, (1, 7), "b7x7x3_2"), 192, (7, 1), "b7x7x3_3")
        b7 = cb(b7, 192, 3, "b7x7x3_4", strides=2, padding="valid")
        branches = [b3, b7, max_pool(x)]
    elif kind == "e":
        b3 = cb(x, 384, 1, "b3x3_1")
        b3 = layers.Concatenate(name=f"{name}_b3x3")([cb(b3, 384, (1, 3), "b3x3_2a"), cb(b3, 384, (3, 1), "b3x3_2b")])
        b3d = cb(cb(x, 448, 1, "b3x3dbl_1"), 384, 3, "b3x3dbl_2")
        b3d = layers.Concatenate(name=f"{name}_b3x3dbl")(
            [cb(b3d, 384, (1, 3), "b3x3dbl_3a"), cb(b3d, 384, (3, 1), "b3x3dbl_3b")]
        )
        branches = [cb(x, 320, 1, "b1x1"), b3, b3d, cb(avg_pool(x), 192, 1, "bpool")]
    else:
        raise ValueError(f"Unknown Inception v3 module type {kind!r}.")
    return layers.Concatenate(axis=-1, name=name)(branches)


def build_inception_v3(inputs, opts: L.BuildOptions, *, blocks=INCEPTION_V3_BLOCKS):
    """Inception v3 as in keras.applications (299x299 default, 75x75 minimum)."""
    x = inputs
    for row in INCEPTION_V3_STEM:
        if isinstance(row, str):
            x = layers.MaxPooling2D(3, strides=2, name=row)(x)
        else:
            name, filters, kernel, stride, padding = row
            x = L.conv_bn(x, filters, kernel, opts, name=name, strides=stride, padding=padding, scale=False)
    for name, kind, arg in blocks:
        x = _v3_module(x, kind, arg, opts, name)
    return L.gap_head(x, opts)
