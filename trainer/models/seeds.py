"""The seed articles' models, reproduced exactly (the five articles are named in trainer/models/__init__.py).

Where a seed model is a configuration of a family builder it is registered (trainer/models/specs.py)
with that builder and the seed's settings; the three that have their own layout (seeds 000, 001,
002) have their own builder below. Softmax outputs of the articles become logits: a Dense without
activation has the same parameters.

| seed file                | registry name         | builder                       |
|--------------------------|-----------------------|-------------------------------|
| 000_2b1ce18881ec2c31.txt | seed000_cifar_resnet  | build_seed000_cifar_resnet    |
| 001_c73c302f12a021a3.txt | seed001_resnet100     | build_seed001_resnet100       |
| 002_1c1809f04ebf766e.txt | seed002_resnet50      | build_seed002_resnet50        |
| 003_924d51171602d041.txt | seed003_alexnet       | alexnet.build_alexnet         |
|                          | seed003_vgg16         | vgg.build_vgg                 |
|                          | seed003_googlenet     | inception.build_googlenet     |
|                          | seed003_resnet18      | resnet.build_resnet           |
| 004_5c920be0a47925d0.txt | seed004_resnext       | resnet.build_resnet           |
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L

# --- Seed 000: `block_prepare` + `block_conv` CIFAR-10 ResNet -------------------------------
# (filters, blocks) per stage. The last block of each stage but the final one max-pools (3x3/2)
# and widens with a 1x1 conv to 2x filters; the final stage ends in a 2x2/2 average pool.
SEED000_STAGES = ((64, 4), (128, 4), (256, 6), (512, 3))


def build_seed000_cifar_resnet(inputs, opts: L.BuildOptions, *, stages=SEED000_STAGES):
    """conv3x3(64, relu) -> BN -> 2x2 max-pool; blocks conv(relu) -> BN -> conv -> BN -> add -> relu."""
    x = L.conv(inputs, stages[0][0], 3, opts, name="prepare_conv", activation="relu")
    x = L.batch_norm(x, name="prepare_bn")
    x = layers.MaxPooling2D(2, name="prepare_pool")(x)
    for s, (filters, blocks) in enumerate(stages, start=1):
        for b in range(1, blocks + 1):
            name = f"stage{s}_block{b}"
            y = L.conv(x, filters, 3, opts, name=f"{name}_conv1", activation="relu")
            y = L.batch_norm(y, name=f"{name}_bn1")
            y = L.conv(y, filters, 3, opts, name=f"{name}_conv2")
            y = L.batch_norm(y, name=f"{name}_bn2")
            x = L.relu(layers.Add(name=f"{name}_add")([y, x]), name=f"{name}_relu")
            if b == blocks and s < len(stages):
                x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)
                x = L.conv(x, filters * 2, 1, opts, name=f"{name}_widen")
            elif b == blocks:
                x = layers.AveragePooling2D(2, strides=2, padding="same", name=f"{name}_avgpool")(x)
    return L.flatten_head(x, opts)


# --- Seed 001: the TF1 "ResNet-100" of 3-layer bottleneck units, no BN --------------------------
# Every conv has a bias and a ReLU (the expanding 1x1 too, as in the article's `conv`). "same"
# units keep the width (1x1 to C/4, 3x3, 1x1 to C, identity add); "increase" units double it
# (1x1 to C/2, 3x3, 1x1 to 2C, plus a 1x1 ReLU projection of the input); "pool" is 2x2/2.
SEED001_LAYOUT = (
    ("pool", 1),
    ("same", 1),
    ("pool", 1),
    ("same", 5),
    ("increase", 1),
    ("pool", 1),
    ("same", 10),
    ("increase", 1),
    ("pool", 1),
    ("same", 15),
    ("increase", 1),
)


def build_seed001_resnet100(inputs, opts: L.BuildOptions, *, layout=SEED001_LAYOUT, stem_width=64):
    """conv7x7/1 -> pool -> conv1x1 -> the layout's units and pools -> 7x7 avg-pool -> FC."""

    def conv(t, filters, kernel, name):
        return L.conv(t, filters, kernel, opts, name=name, activation="relu")

    x = conv(inputs, stem_width, 7, "conv1")
    x = layers.MaxPooling2D(2, padding="same", name="pool1")(x)
    x = conv(x, stem_width, 1, "conv2")
    pools, units = 1, 0
    for op, count in layout:
        for _ in range(count):
            if op == "pool":
                pools += 1
                x = layers.MaxPooling2D(2, padding="same", name=f"pool{pools}")(x)
                continue
            units += 1
            name, channels = f"res{units}", x.shape[-1]
            inner = channels // 4 if op == "same" else channels // 2
            y = conv(conv(x, inner, 1, f"{name}_conv1"), inner, 3, f"{name}_conv2")
            y = conv(y, inner * 4, 1, f"{name}_conv3")
            if op == "increase":
                x = conv(x, inner * 4, 1, f"{name}_shortcut")
            x = layers.Add(name=f"{name}_add")([x, y])
    if opts.include_top:
        x = layers.AveragePooling2D(7, name="avg_pool")(x)
    return L.flatten_head(x, opts, logits_name="fc")


# --- Seed 002: identity_block / convolutional_block ResNet-50 for 64x64 SIGNS ------------------
# (stage, filters [F1, F2, F3], stride of the convolutional block, blocks); names as the article:
# res2a_branch2a, bn2a_branch2a, ..., res2a_branch1 (projection), avg_pool, fc<classes>.
SEED002_STAGES = (
    (2, (64, 64, 256), 1, 3),
    (3, (128, 128, 512), 2, 4),
    (4, (256, 256, 1024), 2, 6),
    (5, (512, 512, 2048), 2, 3),
)


def _seed002_block(x, filters, stage, block, stride, opts, *, projection, f=3):
    conv_base, bn_base = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    f1, f2, f3 = filters
    shortcut = x
    for part, width, kernel, strides, padding in (
        ("2a", f1, 1, stride, "valid"),
        ("2b", f2, f, 1, "same"),
        ("2c", f3, 1, 1, "valid"),
    ):
        x = L.conv(x, width, kernel, opts, name=conv_base + part, strides=strides, padding=padding)
        x = L.batch_norm(x, name=bn_base + part)
        if part != "2c":
            x = L.relu(x, name=f"{conv_base}{part}_relu")
    if projection:
        shortcut = L.conv(shortcut, f3, 1, opts, name=conv_base + "1", strides=stride, padding="valid")
        shortcut = L.batch_norm(shortcut, name=bn_base + "1")
    x = layers.Add(name=f"res{stage}{block}_add")([x, shortcut])
    return L.relu(x, name=f"res{stage}{block}_relu")


def build_seed002_resnet50(inputs, opts: L.BuildOptions, *, stages=SEED002_STAGES):
    """ZeroPad(3) -> conv7x7/2 -> BN -> ReLU -> max-pool 3x3/2 -> stages -> avg-pool 2x2 -> FC."""
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = L.conv(x, 64, 7, opts, name="conv1", strides=2, padding="valid")
    x = L.relu(L.batch_norm(x, name="bn_conv1"), name="conv1_relu")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, filters, stride, blocks in stages:
        for b in range(blocks):
            x = _seed002_block(
                x, filters, stage, "abcdefghijklmnopqrstuvwxyz"[b], stride if b == 0 else 1, opts, projection=b == 0
            )
    if opts.include_top:
        x = layers.AveragePooling2D(2, name="avg_pool")(x)
    return L.flatten_head(x, opts, logits_name=f"fc{opts.num_classes}")
