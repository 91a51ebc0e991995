"""Model zoo: every architecture of the seed articles, exactly, plus the canonical families.

    from trainer.models import create_model, list_models, get_spec
    model = create_model("resnet50", num_classes=20, input_shape=(224, 224, 3))

Models take channels-last float32 images already normalised by the trainer and return float32
logits (no softmax), also under a mixed_float16 policy.

Seed article -> registry name (five Chinese blog posts; the project's specification of the zoo):

    "机器学习笔记7 CIFAR 10 图像识别 ResNet with Keras"
                              seed000_cifar_resnet   block_prepare/block_conv CIFAR-10 ResNet
    "09-ResNet-TensorFlow 20 classification of flower identification"
                              seed001_resnet100      100-layer bottleneck ResNet, 224x224, 20 flowers
    ResNets from identity_block / convolutional_block ("先一个个实现ResNets的网络模块"), SIGNS
                              seed002_resnet50       identity/convolutional-block ResNet-50, 64x64
    "经典的图像分类模型"        seed003_alexnet        AlexNet, 227x227x1 (58,299,082 params)
                              seed003_vgg16          VGG-16, 224x224x1 (134,300,362 params)
                              seed003_googlenet      GoogLeNet, 224x224x3 (5,983,802 params)
                              seed003_resnet18       ResNet-18, 224x224x1 (11,186,186 params)
    "【Keras-ResNeXt】CIFAR-10" seed004_resnext        ResNeXt CIFAR, cardinality 8 (5,671,872 params)

Canonical families: alexnet; vgg11/13/16/19 (+ _bn); googlenet; inception_v3;
resnet18/34/50/101/152; cifar_resnet20/32/44/56/110; resnext29_8x64d, resnext29_16x64d,
resnext50_32x4d. `python -m trainer.models --list` prints them with parameters and FLOPs.

Importing this package imports no TensorFlow: the variants are data (trainer/models/specs.py),
and a family's builder module (with Keras) is imported when its first model is created.
"""

from trainer.models.registry import (
    ModelSpec,
    UnknownOverrideError,
    accepted_overrides,
    create_model,
    get_spec,
    list_families,
    list_models,
    load_model,
    register_model,
    without_aux_heads,
)
from trainer.models.specs import SEED_MODELS  # importing the spec tables registers the zoo

__all__ = [
    "ModelSpec",
    "SEED_MODELS",
    "UnknownOverrideError",
    "accepted_overrides",
    "create_model",
    "get_spec",
    "list_families",
    "list_models",
    "load_model",
    "register_model",
    "without_aux_heads",
]
