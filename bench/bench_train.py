"""Trainer benchmarks: loop efficiency, strategy overhead, input pipeline throughput.

    python -m bench.bench_train [--repeats=3] [--images=2048]

1. loop: images/s of our custom loop (trainer.loop.Trainer) vs Keras `model.fit` on the same
   model (cifar_resnet20 at 32 px), the same tf.data input and batch, one device, in one
   process, alternating, median of repeats. Target >= 1.0x.
2. strategy: our loop under `mirrored` over 2 logical CPUs vs `one_device`, same global
   batch, one subprocess each (logical devices are set per process). Target overhead <= 15%.
3. input: images/s delivered by our tf.data pipeline from TFRecords vs
   `keras.utils.image_dataset_from_directory` on the same 224x224 JPEGs, and vs the
   decode-only ceiling (tf.data decoding the same in-memory JPEG bytes, all cores). Targets
   >= 2x and >= 80% of the ceiling.
Appends the numbers and this command to the Trainer section of bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

from bench import results
from bench.datasets import make_folder, make_tfrecords

_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats per measurement (medians are reported).")
_IMAGES = flags.DEFINE_integer("images", 2048, "Images in the benchmark dataset.")
_CACHE = flags.DEFINE_string("cache_dir", "/tmp/flowerpipe-bench", "Where generated data is kept between runs.")
_PARTS = flags.DEFINE_list("parts", ["loop", "strategy", "input"], "Measurements to run (loop, strategy, input).")
_ONLY = flags.DEFINE_string("only", "", "Internal: run one measurement in this process (strategy benchmark).")


def _config(data_dir: str, strategy: str, replicas: int = 0):
    from trainer.config import build_config

    return build_config(
        overrides=dict(
            model="cifar_resnet20",
            image_size=32,
            data_dir=data_dir,
            batch_size=64,
            optimizer="sgd",
            learning_rate=0.05,
            momentum=0.9,
            epochs=1,
            strategy=strategy,
            cpu_replicas=replicas,
            log_every=0,
            normalization="unit",
            augment_flip=True,
            augment_crop_pad=4,
        )
    )


def our_loop_rate(data_dir: str, strategy: str, replicas: int, steps: int, run_dir: str) -> float:
    """Images/s of Trainer's train step over `steps` steps after a warm-up."""
    from bench.train_setup import make_trainer
    from trainer import data as data_lib
    from trainer import strategy as strategy_lib

    config = _config(data_dir, strategy, replicas)
    strat = strategy_lib.make_strategy(config.runtime.strategy, config.runtime.cpu_replicas)
    info = data_lib.open_dataset(data_dir)
    trainer = make_trainer(config, run_dir, strat, info, [0.0] * 3, [255.0] * 3)
    it = trainer._train_stream(0)
    for _ in range(5):
        trainer._train_step(next(it))
    t0 = time.perf_counter()
    for _ in range(steps):
        out = trainer._train_step(next(it))
    float(out[0])
    return steps * config.optim.batch_size / (time.perf_counter() - t0)


def keras_fit_rate(data_dir: str, steps: int) -> float:
    import keras
    import tensorflow as tf

    from trainer import data as data_lib
    from trainer.models import create_model

    info = data_lib.open_dataset(data_dir)
    ds = data_lib.make_train_dataset(info, "train", batch_size=64, image_size=32, flip=True, crop_pad=4)
    # Our loop normalises inside its step; Keras gets the same arithmetic in a map.
    ds = ds.map(lambda x, y: (data_lib.normalize(x, [0.0] * 3, [255.0] * 3), y), num_parallel_calls=tf.data.AUTOTUNE)
    model = create_model("cifar_resnet20", num_classes=len(info.class_names), input_shape=(32, 32, 3))
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * 64 / (time.perf_counter() - t0)


def input_rates(folder: str, data_dir: str, n: int) -> dict[str, float]:
    """Images/s delivered by each pipeline (no model), counted from each batch's leading dimension.

    The decode-only ceiling decodes the very JPEG bytes stored in the TFRecords, held in memory.
    `cached` is our pipeline with --cache, measured after its first (cache-filling) pass.
    """
    import keras
    import tensorflow as tf

    from trainer import data as data_lib

    info = data_lib.open_dataset(data_dir)

    def ours(cache=False):
        return data_lib.make_train_dataset(
            info, "train", batch_size=64, image_size=224, deterministic=False, cache=cache
        )

    def rate(ds, count, warmup=10):  # tf.data's autotuner needs a few batches to settle
        it = iter(ds)
        for _ in range(warmup):
            next(it)
        t0 = time.perf_counter()
        seen = 0
        while seen < count:
            batch = next(it)
            seen += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
        return seen / (time.perf_counter() - t0)

    keras_ds = keras.utils.image_dataset_from_directory(
        folder, image_size=(224, 224), batch_size=64, shuffle=True, seed=0, verbose=False
    ).repeat()
    blobs = [b.numpy() for b, _ in data_lib.raw_split(info, "train", shuffle_seed=None)]
    ceiling = (
        tf.data.Dataset.from_tensor_slices(blobs)
        .repeat()
        .map(lambda b: tf.io.decode_jpeg(b, channels=3), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(64)
        .prefetch(tf.data.AUTOTUNE)
    )
    count = min(n, len(blobs)) * 6  # several seconds per measurement: these machines are noisy
    one_pass = info.split_sizes["train"] // 64 + 10
    return {
        "ours": rate(ours(), count),
        "keras": rate(keras_ds, count),
        "ceiling": rate(ceiling, count),
        "cached": rate(ours(cache=True), count, warmup=one_pass),
    }


def _median_str(values):
    return f"{statistics.median(values):.1f} (runs: {', '.join(f'{v:.1f}' for v in values)})"


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _ONLY.value:  # one strategy measurement in a fresh process
        strategy, replicas, data_dir, run_dir = _ONLY.value.split(",")
        print(json.dumps({"rate": our_loop_rate(data_dir, strategy, int(replicas), 40, run_dir)}))
        return
    load_before = os.getloadavg()[0]
    cache = _CACHE.value
    small = make_folder(os.path.join(cache, "jpg32"), _IMAGES.value, 40)
    big = make_folder(os.path.join(cache, "jpg224"), _IMAGES.value, 224)
    data32 = make_tfrecords(small, os.path.join(cache, "tfr32"), 32)
    data224 = make_tfrecords(big, os.path.join(cache, "tfr224"), 224)

    parts = set(_PARTS.value)
    loop_rates, fit_rates = [], []
    for r in range(_REPEATS.value if "loop" in parts else 0):
        loop_rates.append(our_loop_rate(data32, "one_device", 0, 40, os.path.join(cache, f"run{r}")))
        fit_rates.append(keras_fit_rate(data32, 40))
    one, mirrored = [], []
    for r in range(_REPEATS.value if "strategy" in parts else 0):
        for name, replicas, out in (("one_device", 0, one), ("mirrored", 2, mirrored)):
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_train",
                    f"--only={name},{replicas},{data32},{os.path.join(cache, f's{name}{r}')}",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(proc.stdout.strip().splitlines()[-1])["rate"])
    inputs = [input_rates(big, data224, _IMAGES.value) for _ in range(_REPEATS.value if "input" in parts else 0)]

    med = statistics.median
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {', '.join(_PARTS.value)}",
        "",
        f"Command: `python -m bench.bench_train --repeats={_REPEATS.value} --images={_IMAGES.value} "
        f"--parts={','.join(_PARTS.value)}` ({time.strftime('%Y-%m-%d %H:%M')}, 2-core CPU, load average before "
        f"{load_before:.1f}, medians of {_REPEATS.value} runs, images/s)",
        "",
        "| measurement | ours | baseline | ratio | target |",
        "|---|---|---|---|---|",
    ]
    if loop_rates:
        lines.append(
            f"| 1. train loop, cifar_resnet20 32 px, batch 64, one device | {_median_str(loop_rates)} | "
            f"Keras fit {_median_str(fit_rates)} | {med(loop_rates) / med(fit_rates):.2f}x | >= 1.0x |"
        )
    if one:
        lines.append(
            f"| 2. mirrored over 2 logical CPUs vs one_device, global batch 64 | {_median_str(mirrored)} | "
            f"one_device {_median_str(one)} | overhead {med(one) / med(mirrored) - 1:+.1%} | <= 15% |"
        )
    if inputs:
        ours, keras_r, ceil, cached = ([i[k] for i in inputs] for k in ("ours", "keras", "ceiling", "cached"))
        lines += [
            f"| 3. input pipeline, 224 px JPEG TFRecords -> uint8 batches | {_median_str(ours)} | "
            f"image_dataset_from_directory {_median_str(keras_r)} | {med(ours) / med(keras_r):.2f}x | >= 2x |",
            f"| 3b. same vs decode-only ceiling (the records' JPEG bytes in memory, tf.data) | {med(ours):.0f} | "
            f"ceiling {_median_str(ceil)} | {med(ours) / med(ceil):.0%} | >= 80% |",
            f"| 3c. ours with --cache (decoded images in memory, after the first pass) | {_median_str(cached)} | "
            f"image_dataset_from_directory {med(keras_r):.0f} | {med(cached) / med(keras_r):.2f}x | - |",
        ]
    lines.append("")
    results.record("## Trainer (bench/bench_train.py)", "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
