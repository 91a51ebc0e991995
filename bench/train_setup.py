"""How benchmarks get a trainer: the one place that knows trainer.loop's constructor.

The benchmarks time the project's own train step (`trainer._train_step`), so they need a
Trainer without a training command; when the trainer's construction changes, this file changes.
"""

from __future__ import annotations

# TensorFlow is imported by the functions: a benchmark sets its environment (threads, oneDNN) first.


def make_trainer(config, run_dir: str, strategy, info, mean, std):
    """A `trainer.loop.Trainer` of a `ClassificationTask` for `config` under `strategy` (`mean`/`std`:
    the normalisation in the step); `._train_step(batch)` runs one step."""
    from trainer import loop
    from trainer.task import ClassificationTask

    return loop.Trainer(config, run_dir, strategy, ClassificationTask(config, info, mean, std))


def synthetic_info(num_classes: int, image_size: int, channels: int = 3, train_examples: int = 50_000):
    """A `trainer.data.DatasetInfo` with no files behind it: for benchmarks that feed batches from memory."""
    from trainer.data import DatasetInfo

    return DatasetInfo(
        builder=None,
        class_names=[f"class{i}" for i in range(num_classes)],
        channels=channels,
        image_key="image",
        label_key="label",
        split_sizes={"train": train_examples, "validation": 0, "test": 0},
        image_shape=(image_size, image_size, channels),
        encoding=None,
    )
