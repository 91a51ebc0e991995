"""What is trained, apart from how: the image classification task (as TF Model Garden's Task).

`ClassificationTask` builds the zoo model with the run's BatchNorm policy, normalises the
uint8 pixels inside the step (on the replica's device), defines the per-example loss (label
smoothing, mixed one-hot labels from mixup/cutmix, weighted auxiliary heads) and the metric
sums a step returns. trainer/loop.py's `Trainer` runs it: steps under a strategy, checkpoints,
learning rate, NaN roll-back, preemption, summaries.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from trainer import data as data_lib
from trainer import optim
from trainer.config import TrainConfig
from trainer.models import create_model, get_spec


class ClassificationTask:
    """Model, loss, metrics and input normalisation of one run.

    Args:
        config: the run's typed config (model, data and optim sections are read).
        info: the dataset (class names, channels, splits).
        mean, std: per-channel normalisation constants on the 0-255 scale.
    """

    def __init__(self, config: TrainConfig, info: data_lib.DatasetInfo, mean: list[float], std: list[float]):
        self.config, self.info, self.mean, self.std = config, info, mean, std
        spec = get_spec(config.model.name)
        self.image_size = config.model.image_size or spec.default_input_shape[0]
        self.num_classes = len(info.class_names)
        self.aux_weights = tuple(spec.aux_loss_weights) if config.model.aux_heads else ()

    def build_model(self) -> keras.Model:
        """The zoo model (logits), its BatchNorm layers set to --bn_momentum and --sync_bn; call
        it under the strategy's scope."""
        c = self.config
        model = create_model(
            c.model.name,
            num_classes=self.num_classes,
            input_shape=(self.image_size, self.image_size, self.info.channels),
            dropout=c.model.dropout,
            weight_decay=optim.kernel_l2(c.optim),  # 0 when the optimizer decays the weights itself
            aux_heads=c.model.aux_heads,
        )
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                if c.model.bn_momentum is not None:
                    layer.momentum = c.model.bn_momentum
                layer.synchronized = c.model.sync_bn
        return model

    def normalize(self, images: tf.Tensor) -> tf.Tensor:
        """uint8 (or mixed float) pixels -> the model's input, per channel."""
        return data_lib.normalize(images, self.mean, self.std)

    def loss(self, outputs, labels) -> tuple[tf.Tensor, tf.Tensor]:
        """Per-example loss with label smoothing and weighted auxiliary heads, and the main logits."""
        if labels.shape.rank == 2:  # mixup/cutmix: already mixed one-hot rows
            onehot = tf.cast(labels, tf.float32)
        else:
            onehot = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        loss_fn = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=self.config.optim.label_smoothing, reduction=None
        )
        heads = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        weights = (1.0, *self.aux_weights)[: len(heads)]
        per_example = sum(w * loss_fn(onehot, tf.cast(h, tf.float32)) for w, h in zip(weights, heads))
        return per_example, heads[0]

    @staticmethod
    def sums(logits, labels, per_example_loss) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """(loss sum, top-1 hits, top-5 hits, examples) of a batch: sums, so replicas and steps add up."""
        if labels.shape.rank == 2:  # mixed one-hot rows: accuracy against the dominant class
            labels = tf.argmax(labels, -1)
        labels = tf.cast(labels, tf.int32)
        logits = tf.cast(logits, tf.float32)
        k = tf.minimum(5, tf.shape(logits)[-1])
        top1 = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        top5 = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32))
        n = tf.cast(tf.shape(labels)[0], tf.float32)
        return tf.reduce_sum(per_example_loss), top1, top5, n
