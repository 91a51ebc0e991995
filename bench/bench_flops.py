"""The training step against the machine's own limit: achieved FLOP/s as a fraction of a matmul peak.

    python -m bench.bench_flops [--models=cifar_resnet20:32,resnet18:64] [--seconds=3] [--windows=3]

1. peak: float32 `tf.matmul` of two n x n matrices (n = 2048 and 4096), 2 n^3 FLOPs each, median
   of repeats; the larger median is the peak. A bfloat16 matmul is timed too where the CPU has
   bf16 instructions (the ceiling of --precision=mixed_bfloat16).
2. step: images/s of the project's own train step (`Trainer._train_step`, built by
   bench/train_setup.py) fed one synthetic in-memory batch again and again, so input is not the
   bottleneck. Achieved FLOP/s = forward FLOPs per image (TF profiler, at that input) x 3 (forward
   + backward) x images/s.
3. levers, each in a process of its own (threads and oneDNN are fixed when TensorFlow starts),
   side by side with the baseline (batch 64, one device, float32, no XLA, TensorFlow's default
   threads, oneDNN on): XLA, mixed_bfloat16 (if the CPU has bf16), batch size, intra/inter-op
   threads, oneDNN off, MirroredStrategy on 2 logical CPUs; and a probe of data layout
   (channels_first vs channels_last for one Conv2D; the zoo is channels-last).
Each process times `--windows` windows of at least `--seconds` after two warm-up steps; the median
window is its rate. Appends the table and this command to bench/RESULTS.md.
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

_MODELS = flags.DEFINE_list("models", ["cifar_resnet20:32", "resnet18:64"], "Models to time, as name:image_size.")
_LEVERS = flags.DEFINE_list("levers", None, "Only these levers (labels of LEVERS); default all.")
_SECONDS = flags.DEFINE_float("seconds", 3.0, "Minimum length of one timed window.")
_WINDOWS = flags.DEFINE_integer("windows", 3, "Timed windows per process (the median is reported).")
_ONLY = flags.DEFINE_string("only", "", "Internal: run one variant (JSON) in this process and print its result.")

SECTION = "## Training step vs the machine's peak (bench/bench_flops.py)"
BASE = {"batch": 64, "replicas": 0, "jit": False, "precision": "float32", "intra": 0, "inter": 0, "onednn": None}
# label -> changes to BASE. Levers that change results (XLA's fusion order, bf16) are measured,
# never made defaults silently.
LEVERS = {
    "baseline": {},
    "XLA (--jit)": {"jit": True},
    "--precision=mixed_bfloat16": {"precision": "mixed_bfloat16"},
    "XLA + mixed_bfloat16": {"jit": True, "precision": "mixed_bfloat16"},
    "batch 32": {"batch": 32},
    "batch 128": {"batch": 128},
    "batch 256": {"batch": 256},
    "intra 2 / inter 1": {"intra": 2, "inter": 1},
    "intra 1 / inter 2": {"intra": 1, "inter": 2},
    "intra 1 / inter 1": {"intra": 1, "inter": 1},
    "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)": {"onednn": "0"},
    "mirrored over 2 logical CPUs": {"replicas": 2},
}
BF16_LEVERS = ("--precision=mixed_bfloat16", "XLA + mixed_bfloat16")


def cpu_bf16_flags() -> list[str]:
    """The bf16 instruction sets /proc/cpuinfo lists (avx512_bf16, amx_bf16); empty if none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            words = set(f.read().split())
    except OSError:
        return []
    return sorted(w for w in ("avx512_bf16", "amx_bf16") if w in words)


def matmul_gflops(n: int, repeats: int, dtype: str = "float32") -> list[float]:
    """GFLOP/s of `repeats` n x n matmuls (after one warm-up), 2 n^3 FLOPs each."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32)
    b = tf.random.normal((n, n), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    tf.matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.matmul(a, b).numpy()
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return rates


def forward_flops(name: str, size: int, num_classes: int = 10) -> int:
    """Forward FLOPs of one image at size x size (TF profiler; a multiply-add is 2)."""
    import keras

    from trainer.models import create_model
    from trainer.models.stats import count_flops

    flops = count_flops(create_model(name, num_classes=num_classes, input_shape=(size, size, 3)))
    keras.backend.clear_session()
    return flops


def run_variant(v: dict) -> dict:
    """One variant in this process: the median train-step rate over timed windows."""
    import tensorflow as tf

    if v["intra"]:
        tf.config.threading.set_intra_op_parallelism_threads(v["intra"])
    if v["inter"]:
        tf.config.threading.set_inter_op_parallelism_threads(v["inter"])
    from bench.train_setup import make_trainer, synthetic_info
    from trainer import strategy as strategy_lib
    from trainer.config import build_config

    name, size, batch = v["model"], v["size"], v["batch"]
    strategy = "mirrored" if v["replicas"] > 1 else "one_device"
    strat = strategy_lib.make_strategy(strategy, v["replicas"])
    config = build_config(
        overrides=dict(
            model=name,
            image_size=size,
            batch_size=batch,
            optimizer="sgd",
            learning_rate=0.01,
            momentum=0.9,
            epochs=1,
            strategy=strategy,
            cpu_replicas=v["replicas"],
            log_every=0,
            jit=v["jit"],
            precision=v["precision"],
        )
    )
    run_dir = v["run_dir"]
    trainer = make_trainer(config, run_dir, strat, synthetic_info(10, size), [0.0] * 3, [255.0] * 3)
    rng = tf.random.Generator.from_seed(0)
    images = tf.cast(rng.uniform((batch, size, size, 3), 0, 256, dtype=tf.int32), tf.uint8)
    labels = rng.uniform((batch,), 0, 10, dtype=tf.int64)
    ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
    it = iter(strat.experimental_distribute_dataset(ds))
    t0 = time.perf_counter()
    float(trainer._train_step(next(it))[0])
    first = time.perf_counter() - t0
    float(trainer._train_step(next(it))[0])
    rates = []
    for _ in range(v["windows"]):
        steps, t0 = 0, time.perf_counter()
        while True:
            out = trainer._train_step(next(it))
            steps += 1
            float(out[0])
            elapsed = time.perf_counter() - t0
            if elapsed >= v["seconds"]:
                break
        rates.append(steps * batch / elapsed)
    return {"rates": rates, "first_step_s": first}


def layout_probe(seconds: float) -> dict:
    """Forward + backward of one 3x3 Conv2D (64 -> 64 channels, 16x16 maps, batch 64: resnet18's
    first stage at 64 px) in each data format; an error is recorded, not raised."""
    import keras
    import tensorflow as tf

    out = {}
    for fmt in ("channels_last", "channels_first"):
        shape = (64, 16, 16, 64) if fmt == "channels_last" else (64, 64, 16, 16)
        layer = keras.layers.Conv2D(64, 3, padding="same", data_format=fmt)
        x = tf.random.normal(shape)

        @tf.function
        def step(x, layer=layer):
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(layer(x))
            return tape.gradient(y, layer.trainable_variables)

        try:
            step(x)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                step(x)[0].numpy()
                n += 1
            out[fmt] = {"steps_per_s": n / (time.perf_counter() - t0)}
        except Exception as e:  # noqa: BLE001 - the unsupported format's error is the result
            out[fmt] = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"}
    return out


def _child(spec: dict, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_flops", f"--only={json.dumps(spec)}"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _ONLY.value:
        spec = json.loads(_ONLY.value)
        print(json.dumps(layout_probe(spec["seconds"]) if spec.get("probe") else run_variant(spec)))
        return
    started, load_before = time.time(), os.getloadavg()[0]
    bf16 = cpu_bf16_flags()
    levers = [lv for lv in LEVERS if not _LEVERS.value or lv in _LEVERS.value]
    if not bf16:
        levers = [lv for lv in levers if lv not in BF16_LEVERS]

    peaks = {n: matmul_gflops(n, 7 if n <= 2048 else 3) for n in (2048, 4096)}
    peak = max(statistics.median(r) for r in peaks.values())
    bf16_peak = statistics.median(matmul_gflops(4096, 3, "bfloat16")) if bf16 else None
    models = [(m.split(":")[0], int(m.split(":")[1])) for m in _MODELS.value]
    flops = {m: forward_flops(*m) for m in models}

    rows = []
    for name, size in models:
        base_rate = None
        for label in levers:
            v = {**BASE, **LEVERS[label], "model": name, "size": size}
            if v["batch"] == 256 and flops[(name, size)] > 1e8:
                continue  # a 256-image step of a large model takes tens of seconds per window
            v.update(seconds=_SECONDS.value, windows=_WINDOWS.value, run_dir=f"/tmp/bench-flops-{os.getpid()}")
            env = {"TF_ENABLE_ONEDNN_OPTS": v["onednn"]} if v["onednn"] is not None else None
            res = _child(v, env)
            print(label, name, res, flush=True)
            if "error" in res:
                rows.append(f"| {name} {size} px | {label} | failed: {res['error']} | | | |")
                continue
            rate = statistics.median(res["rates"])
            base_rate = rate if label == "baseline" else base_rate
            frac = flops[(name, size)] * 3 * rate / (peak * 1e9)
            runs = ", ".join(f"{r:.1f}" for r in res["rates"])
            ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
            rows.append(
                f"| {name} {size} px | {label} | {rate:.1f} ({runs}) | {ratio} | {frac:.1%} | "
                f"{res['first_step_s']:.1f} s |"
            )
    probe = _child({"probe": True, "seconds": _SECONDS.value})
    peak_end = statistics.median(matmul_gflops(2048, 7))

    def probe_cell(fmt):
        r = probe.get(fmt, probe)
        return r["error"] if "error" in r else f"{r['steps_per_s']:.1f} steps/s"

    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    peak_runs = "; ".join(f"{n}: {', '.join(f'{r:.1f}' for r in rs)}" for n, rs in peaks.items())
    lines = [
        f"### {stamp} UTC, {', '.join(_MODELS.value)}",
        "",
        f"Command: `nice -n 5 python -m bench.bench_flops --models={','.join(_MODELS.value)} "
        f"--seconds={_SECONDS.value:g} --windows={_WINDOWS.value}"
        + (f" --levers='{','.join(_LEVERS.value)}'" if _LEVERS.value else "")
        + f"` ({stamp}, 2-core CPU, load average before "
        f"{load_before:.1f}, {time.time() - started:.0f} s in all)",
        "",
        f"Peak: float32 matmul {peak:.1f} GFLOP/s (median of repeats; {peak_runs}), "
        f"{peak_end:.1f} at n=2048 after the levers. bf16 on this CPU: "
        + (
            f"{', '.join(bf16)}; bfloat16 matmul n=4096 {bf16_peak:.1f} GFLOP/s."
            if bf16
            else "absent (no bf16 lever run)."
        )
        + " Forward FLOPs per image: "
        + ", ".join(f"{n} {s} px {flops[(n, s)] / 1e6:.1f}M" for n, s in models)
        + ".",
        "",
        "| model | lever | img/s median (windows) | vs baseline | FLOP fraction of fp32 peak | first step |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Data layout probe (one 3x3 Conv2D fwd+bwd, 64 ch, 16x16, batch 64): channels_last "
        f"{probe_cell('channels_last')}; channels_first {probe_cell('channels_first')}.",
        "",
    ]
    results.record(SECTION, "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
