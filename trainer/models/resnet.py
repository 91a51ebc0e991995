"""ResNet (He et al., CVPR 2016) and ResNeXt (Xie et al., CVPR 2017): one generic builder.

A variant is a row of a spec table (specs.RESNET_SPECS, specs.RESNEXT_SPECS): block type,
blocks per stage, and for ResNeXt the `cardinality` and `base_width` of the grouped 3x3
convolution (a bottleneck's inner width is `int(planes * base_width / 64) * cardinality`, timm's
convention). Layer names follow keras.applications: conv1_conv, conv2_block1_1_conv, ...,
conv5_block3_out, avg_pool, predictions.

- ImageNet ResNets mirror keras.applications.ResNet50/101/152 (biased convs, stride in the first
  1x1 of a bottleneck, BN epsilon 1.001e-5), so their parameter counts equal Keras's; with
  `use_bias=False` they equal torchvision's.
- CIFAR ResNets are the paper's Sec. 4.2 networks: 3x3 stem of 16, three stages of n basic
  blocks (16/32/64 filters), depth 6n+2, parameter-free "option A" shortcuts.
- ResNeXt uses bias-free convs and strides in the grouped 3x3 (the paper's reference code).
"""

from __future__ import annotations

from keras import layers

from trainer.models import layers as L

IMAGENET_PLANES = (64, 128, 256, 512)
KERAS_BN_EPSILON = 1.001e-5
EXPANSION = {"basic": 1, "bottleneck": 4}


def _shortcut(x, out_channels, stride, opts, name, *, kind, use_bias, bn, epsilon):
    in_channels = x.shape[-1]
    if stride == 1 and in_channels == out_channels:
        return x
    if kind == "zero_pad":
        if out_channels < in_channels:
            raise ValueError(f"{name}: a zero-padding shortcut cannot reduce channels.")
        if stride > 1:  # 1x1 max-pool with stride s is plain subsampling
            x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_subsample")(x)
        return L.ChannelPad(out_channels - in_channels, name=f"{name}_0_pad")(x)
    if kind != "projection":
        raise ValueError(f"shortcut must be 'projection' or 'zero_pad'. Received: {kind!r}")
    x = L.conv(x, out_channels, 1, opts, name=f"{name}_0_conv", strides=stride, use_bias=use_bias)
    return L.batch_norm(x, name=f"{name}_0_bn", epsilon=epsilon) if bn else x


def _block(
    x,
    kind,
    planes,
    stride,
    opts,
    name,
    *,
    cardinality,
    base_width,
    use_bias,
    stride_in_1x1,
    shortcut,
    shortcut_bn,
    epsilon,
):
    out_channels = planes * EXPANSION[kind]
    residual = _shortcut(
        x, out_channels, stride, opts, name, kind=shortcut, use_bias=use_bias, bn=shortcut_bn, epsilon=epsilon
    )
    common = dict(use_bias=use_bias, epsilon=epsilon)
    if kind == "basic":
        x = L.conv_bn(x, planes, 3, opts, name=f"{name}_1", strides=stride, **common)
        x = L.conv_bn(x, planes, 3, opts, name=f"{name}_2", activate=False, **common)
    else:
        width = int(planes * base_width / 64) * cardinality
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        x = L.conv_bn(x, width, 1, opts, name=f"{name}_1", strides=s1, **common)
        x = L.conv_bn(x, width, 3, opts, name=f"{name}_2", strides=s3, groups=cardinality, **common)
        x = L.conv_bn(x, out_channels, 1, opts, name=f"{name}_3", activate=False, **common)
    x = layers.Add(name=f"{name}_add")([residual, x])
    return L.relu(x, name=f"{name}_out")


def build_resnet(
    inputs,
    opts: L.BuildOptions,
    *,
    block,
    stage_blocks,
    stage_planes=IMAGENET_PLANES,
    stage_strides=None,
    cardinality=1,
    base_width=64,
    stem="imagenet",
    stem_width=64,
    stem_padding="keras",
    use_bias=True,
    shortcut="projection",
    shortcut_bn=True,
    stride_in_1x1=True,
    bn_epsilon=KERAS_BN_EPSILON,
    head_bias=True,
):
    """Generic ResNet / ResNeXt.

    Args (keyword-only, all overridable through create_model):
      block: "basic" (two 3x3) or "bottleneck" (1x1, grouped 3x3, 1x1 x4).
      stage_blocks: blocks per stage. stage_planes: planes per stage (outputs x expansion).
      stage_strides: stride of each stage's first block; default 1 then 2s.
      cardinality, base_width: ResNeXt grouping (bottleneck only).
      stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3/1 conv).
      stem_width: filters of the stem conv.
      stem_padding: "keras" (explicit zero padding + 'valid', as keras.applications) or "same".
      use_bias: biases in the convolutions.
      shortcut: "projection" (1x1 conv when the shape changes) or "zero_pad" (option A).
      shortcut_bn: batch norm after a projection.
      stride_in_1x1: put a bottleneck's stride in its first 1x1 (ResNet v1) or its 3x3.
      bn_epsilon: batch-norm epsilon. head_bias: bias in the classifier.
    """
    if block not in EXPANSION:
        raise ValueError(f"block must be one of {sorted(EXPANSION)}. Received: block={block!r}")
    if block == "basic" and (cardinality != 1 or base_width != 64):
        raise ValueError("cardinality/base_width need block='bottleneck'.")
    if len(stage_planes) != len(stage_blocks):
        raise ValueError(f"stage_planes {stage_planes} and stage_blocks {stage_blocks} differ in length.")
    stage_strides = stage_strides or (1,) + (2,) * (len(stage_blocks) - 1)
    common = dict(use_bias=use_bias, epsilon=bn_epsilon)
    if stem == "imagenet":
        if stem_padding == "keras":
            x = layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
            x = L.conv_bn(x, stem_width, 7, opts, name="conv1", strides=2, padding="valid", **common)
            x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
            x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        elif stem_padding == "same":
            x = L.conv_bn(inputs, stem_width, 7, opts, name="conv1", strides=2, **common)
            x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
        else:
            raise ValueError(f"stem_padding must be 'keras' or 'same'. Received: {stem_padding!r}")
    elif stem == "cifar":
        x = L.conv_bn(inputs, stem_width, 3, opts, name="conv1", **common)
    else:
        raise ValueError(f"stem must be 'imagenet' or 'cifar'. Received: stem={stem!r}")
    for s, (blocks, planes, stride) in enumerate(zip(stage_blocks, stage_planes, stage_strides)):
        for b in range(blocks):
            x = _block(
                x,
                block,
                planes,
                stride if b == 0 else 1,
                opts,
                f"conv{s + 2}_block{b + 1}",
                cardinality=cardinality,
                base_width=base_width,
                stride_in_1x1=stride_in_1x1,
                shortcut=shortcut,
                shortcut_bn=shortcut_bn,
                **common,
            )
    return L.gap_head(x, opts, use_bias=head_bias)
