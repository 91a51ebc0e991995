"""The zoo as data: every family's spec table, the registered variants and their pinned counts.

Nothing here imports TensorFlow: a variant names its builder ("trainer.models.resnet:build_resnet"),
imported when the first model of the family is created. So `python -m trainer.models --list`
and a trainer's `--help` read names, input sizes, parameters and FLOPs without building anything.

The counts in PINNED are measured, not computed here: `python -m trainer.models --measure=NAME`
builds NAME at its default input and class count and prints them; tests/trainer/test_models.py
rebuilds every registered model and asserts they still hold (a builder change that alters a
count fails there, and this table is then updated with the new measurement).
"""

from __future__ import annotations

from trainer.models.registry import ModelSpec, register_model

# name -> (parameters, trainable parameters, forward FLOPs of one image), at the spec's
# default_input_shape and num_classes. Parameters are Keras's count (BN moving statistics are
# non-trainable parameters); FLOPs are the TF profiler's (a multiply-add is 2). The seed rows'
# parameters are the counts the articles print (seed 002 prints none: Keras's ResNet50 without
# top plus fc6, 23,587,712 + 12,294, the count of the course the article follows).
PINNED = {
    "alexnet": (60_965_224, 60_965_224, 1_450_575_080),
    "cifar_resnet20": (271_098, 269_722, 81_579_306),
    "cifar_resnet32": (466_426, 464_154, 138_491_818),
    "cifar_resnet44": (661_754, 658_586, 195_404_330),
    "cifar_resnet56": (857_082, 853_018, 252_316_842),
    "cifar_resnet110": (1_736_058, 1_727_962, 508_423_146),
    "googlenet": (6_998_552, 6_998_552, 3_181_378_328),
    "inception_v3": (23_851_784, 23_817_352, 11_468_984_680),
    "resnet18": (11_703_912, 11_694_312, 3_638_211_688),
    "resnet34": (21_823_208, 21_806_184, 7_342_000_488),
    "resnet50": (25_636_712, 25_583_592, 7_755_294_312),
    "resnet101": (44_707_176, 44_601_832, 15_198_659_176),
    "resnet152": (60_419_944, 60_268_520, 22_646_421_096),
    "resnext29_8x64d": (34_484_170, 34_426_698, 10_793_316_746),
    "resnext29_16x64d": (68_255_690, 68_155_210, 21_410_015_626),
    "resnext50_32x4d": (25_097_128, 25_028_904, 8_497_392_488),
    "seed000_cifar_resnet": (22_926_730, 22_911_242, 649_716_106),
    "seed001_resnet100": (1_773_652, 1_773_652, 1_400_940_692),
    "seed002_resnet50": (23_600_006, 23_546_886, 619_543_622),
    "seed003_alexnet": (58_299_082, 58_299_082, 2_123_608_970),
    "seed003_googlenet": (5_983_802, 5_983_802, 3_179_349_818),
    "seed003_resnet18": (11_186_186, 11_178_378, 3_479_488_394),
    "seed003_vgg16": (134_300_362, 134_300_362, 30_836_490_250),
    "seed004_resnext": (5_671_872, 5_646_656, 1_811_576_704),
    "vgg11": (132_863_336, 132_863_336, 15_231_736_808),
    "vgg13": (133_047_848, 133_047_848, 22_635_305_960),
    "vgg16": (138_357_544, 138_357_544, 30_960_206_824),
    "vgg19": (143_667_240, 143_667_240, 39_285_107_688),
    # BN variants: trainable equals torchvision's vgg*_bn; Keras also counts moving statistics.
    "vgg11_bn": (132_874_344, 132_868_840, 15_246_605_416),
    "vgg13_bn": (133_059_624, 133_053_736, 22_659_809_512),
    "vgg16_bn": (138_374_440, 138_365_992, 30_987_327_208),
    "vgg19_bn": (143_689_256, 143_678_248, 39_314_844_904),
}

# Seed article file -> the registry names of its models (the articles are named in __init__.py).
SEED_MODELS = {
    "000_2b1ce18881ec2c31.txt": ("seed000_cifar_resnet",),
    "001_c73c302f12a021a3.txt": ("seed001_resnet100",),
    "002_1c1809f04ebf766e.txt": ("seed002_resnet50",),
    "003_924d51171602d041.txt": ("seed003_alexnet", "seed003_vgg16", "seed003_googlenet", "seed003_resnet18"),
    "004_5c920be0a47925d0.txt": ("seed004_resnext",),
}

# --- spec tables ---------------------------------------------------------------------------
# VGG: depth -> ((convs, filters) per block); the paper's Table 1.
VGG_SPECS = {
    11: ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    13: ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    16: ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    19: ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}
# ResNet: depth -> (block, blocks per stage); the paper's Table 1.
RESNET_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_RESNET_DEPTHS = (20, 32, 44, 56, 110)  # n = (depth - 2) / 6 basic blocks per stage
CIFAR_PLANES = (16, 32, 64)
# ResNeXt: name -> (blocks per stage, cardinality, base_width)
RESNEXT_SPECS = {
    "resnext29_8x64d": ((3, 3, 3), 8, 64),
    "resnext29_16x64d": ((3, 3, 3), 16, 64),
    "resnext50_32x4d": ((3, 4, 6, 3), 32, 4),
}
RESNEXT29_PLANES = (64, 128, 256)

_HE_2016 = "He et al., CVPR 2016 (arXiv:1512.03385)"
_XIE_2017 = "Xie et al., CVPR 2017 (arXiv:1611.05431)"
_ALEXNET = "trainer.models.alexnet:build_alexnet"
_VGG = "trainer.models.vgg:build_vgg"
_RESNET = "trainer.models.resnet:build_resnet"
_GOOGLENET = "trainer.models.inception:build_googlenet"
_SEEDS = "trainer.models.seeds:"


def _spec(name: str, **kwargs) -> ModelSpec:
    """The spec of `name` with its pinned counts."""
    params, trainable, flops = PINNED.get(name, (None, None, None))
    return ModelSpec(name=name, params=params, trainable_params=trainable, flops=flops, **kwargs)


# --- canonical families ----------------------------------------------------------------------
register_model(
    _spec(
        "alexnet",
        family="alexnet",
        default_input_shape=(227, 227, 3),
        reference="Krizhevsky et al., NIPS 2012 (two-tower grouping, no LRN)",
        min_input_size=67,
        default_dropout=0.5,
    ),
    _ALEXNET,
    groups=2,
)

for _depth, _stages in VGG_SPECS.items():
    for _bn in (False, True):
        register_model(
            _spec(
                f"vgg{_depth}{'_bn' if _bn else ''}",
                family="vgg",
                default_input_shape=(224, 224, 3),
                min_input_size=32,
                default_dropout=0.5,
                reference="Simonyan & Zisserman, ICLR 2015 (arXiv:1409.1556)",
                keras_application=None if _bn or _depth < 16 else f"VGG{_depth}",
            ),
            _VGG,
            stages=_stages,
            batch_norm=_bn,
        )

register_model(
    _spec(
        "googlenet",
        family="inception",
        default_input_shape=(224, 224, 3),
        reference="Szegedy et al., CVPR 2015 (arXiv:1409.4842), no LRN",
        min_input_size=32,
        aux_loss_weights=(0.3, 0.3),
        default_dropout=0.4,
    ),
    _GOOGLENET,
)
register_model(
    _spec(
        "inception_v3",
        family="inception",
        default_input_shape=(299, 299, 3),
        reference="Szegedy et al., CVPR 2016 (arXiv:1512.00567)",
        min_input_size=75,
        keras_application="InceptionV3",
        default_dropout=0.2,
    ),
    "trainer.models.inception:build_inception_v3",
)

for _depth, (_block_kind, _blocks) in RESNET_SPECS.items():
    register_model(
        _spec(
            f"resnet{_depth}",
            family="resnet",
            default_input_shape=(224, 224, 3),
            reference=_HE_2016,
            min_input_size=32,
            keras_application=f"ResNet{_depth}" if _depth >= 50 else None,
        ),
        _RESNET,
        block=_block_kind,
        stage_blocks=_blocks,
    )

for _depth in CIFAR_RESNET_DEPTHS:
    register_model(
        _spec(
            f"cifar_resnet{_depth}",
            family="resnet",
            default_input_shape=(32, 32, 3),
            reference=f"{_HE_2016}, Sec. 4.2 (CIFAR-10)",
            min_input_size=8,
            num_classes=10,
        ),
        _RESNET,
        block="basic",
        stage_blocks=((_depth - 2) // 6,) * 3,
        stage_planes=CIFAR_PLANES,
        stem="cifar",
        stem_width=16,
        use_bias=False,
        shortcut="zero_pad",
    )

for _name, (_blocks, _cardinality, _width) in RESNEXT_SPECS.items():
    _cifar = len(_blocks) == 3
    register_model(
        _spec(
            _name,
            family="resnext",
            default_input_shape=(32, 32, 3) if _cifar else (224, 224, 3),
            reference=_XIE_2017 + (", Sec. 5.3 (CIFAR)" if _cifar else ""),
            min_input_size=8 if _cifar else 32,
            num_classes=10 if _cifar else 1000,
        ),
        _RESNET,
        block="bottleneck",
        stage_blocks=_blocks,
        **({"stage_planes": RESNEXT29_PLANES} if _cifar else {}),
        cardinality=_cardinality,
        base_width=_width,
        stem="cifar" if _cifar else "imagenet",
        use_bias=False,
        stride_in_1x1=False,
    )


# --- the seed articles' models (trainer/models/seeds.py has the three own builders) ----------
def _register_seed(name, builder, *, input_shape, min_input_size, section="", spec=None, **config):
    """A seed article's model (its article from SEED_MODELS): family "seed", 10 classes unless `spec` says otherwise."""
    article = next(file for file, names in SEED_MODELS.items() if name in names)
    reference = f"seed {article}" + (f" ({section})" if section else "")
    fields = {"num_classes": 10, **(spec or {})}
    register_model(
        _spec(
            name,
            family="seed",
            default_input_shape=input_shape,
            reference=reference,
            min_input_size=min_input_size,
            **fields,
        ),
        builder,
        **config,
    )


_register_seed("seed000_cifar_resnet", _SEEDS + "build_seed000_cifar_resnet", input_shape=(32, 32, 3), min_input_size=2)
_register_seed(
    "seed001_resnet100",
    _SEEDS + "build_seed001_resnet100",
    input_shape=(224, 224, 3),
    min_input_size=193,
    spec={"num_classes": 20},
)
_register_seed(
    "seed002_resnet50",
    _SEEDS + "build_seed002_resnet50",
    input_shape=(64, 64, 3),
    min_input_size=37,
    spec={"num_classes": 6},
)
_register_seed(
    "seed003_alexnet",
    _ALEXNET,
    section="AlexNet",
    input_shape=(227, 227, 1),
    min_input_size=67,
    spec={"default_dropout": 0.5},
    groups=1,
)
_register_seed(
    "seed003_vgg16",
    _VGG,
    section="VGG",
    input_shape=(224, 224, 1),
    min_input_size=32,
    spec={"default_dropout": 0.5},
    stages=VGG_SPECS[16],
)
_register_seed(
    "seed003_googlenet",
    _GOOGLENET,
    section="GoogLeNet",
    input_shape=(224, 224, 3),
    min_input_size=32,
    spec={"aux_loss_weights": (0.3, 0.3)},
    aux_padding="same",
    aux_dropout=0.0,
)
# `Residual`: biased 3x3 convs with BN, a biased 1x1 projection without BN; 'same' stem.
_register_seed(
    "seed003_resnet18",
    _RESNET,
    section="ResNet",
    input_shape=(224, 224, 1),
    min_input_size=32,
    block="basic",
    stage_blocks=(2, 2, 2, 2),
    stem_padding="same",
    use_bias=True,
    shortcut_bn=False,
    bn_epsilon=1e-3,
)
# `block_module`: 1x1 -> grouped 3x3 (8 groups, stride here) -> 1x1 to 2x filters; bias-free
# convs and Dense, he_normal, L2 5e-4. Filters 128/256/512 = planes 64/128/256 x base width 16.
_register_seed(
    "seed004_resnext",
    _RESNET,
    input_shape=(32, 32, 3),
    min_input_size=8,
    spec={"default_weight_decay": 5e-4},
    block="bottleneck",
    stage_blocks=(3, 3, 3),
    stage_planes=(64, 128, 256),
    cardinality=8,
    base_width=16,
    stem="cifar",
    stem_width=64,
    use_bias=False,
    stride_in_1x1=False,
    bn_epsilon=1e-3,
    head_bias=False,
)
