"""Named per-channel normalisation constants (mean, std on the 0-255 scale), by `--normalization` name.

`dataset` (computed from the train split, trainer.data) is the other choice. No TensorFlow here: the
names are the choices of the `--normalization` flag, defined before TensorFlow loads.
"""

NORMALIZATIONS = {
    "imagenet": ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375]),
    # 004_5c920be0a47925d0.txt's color_preprocessing for CIFAR-10.
    "cifar10_seed004": ([125.307, 122.95, 113.865], [62.9932, 62.0887, 66.7048]),
    "unit": ([0.0, 0.0, 0.0], [255.0, 255.0, 255.0]),
}
