"""Benchmark: the Beam TFRecord build vs a plain single-process loop doing the same per-image work.

    python -m bench.bench_build [--images=2000] [--repeats=3] [--cache_dir=bench/.cache]

On the same synthetic JPEGs (about 400x300, quality 90, generated once into --cache_dir):
  loop      one Python process: read, decode/validate, resize to 224 (pad), encode JPEG,
            serialize with pipelines.schema, write one TFRecord file;
  beam-2    `python -m pipelines.build_tfrecords` with its default runner (multi-process
            DirectRunner on all cores: 2 here);
  beam-1    the same job on one worker: in-process (in_memory) and multi-process with 1 worker;
  beam-2x2  (--scale_check) the default runner on twice the images: T(2N) - T(N) is its
            per-image cost without the fixed start-up.
Beam times are the job's own wall time (stats.json: splits, pipeline, metadata, stats, publish),
not the Python/TensorFlow start-up of the command. Medians over --repeats runs; the numbers and
the exact command are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from bench import results

_IMAGES = flags.DEFINE_integer("images", 2000, "Number of JPEGs (at least 2,000 for the recorded numbers).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs of each variant; medians are reported.")
_CACHE = flags.DEFINE_string("cache_dir", os.path.join(os.path.dirname(__file__), ".cache"),
                             "Where the synthetic JPEGs are generated once (git-ignored).")
_SCALE = flags.DEFINE_bool("scale_check", True, "Also run the default runner on twice the images, to split its "
                           "time into a fixed start-up and a per-image cost.")
_RESULTS = flags.DEFINE_string("results", results.PATH, "Results file.")
_IMAGE_SIZE = 224
_CLASSES = 10


def make_images(root: str, n: int) -> str:
    """root/jpeg<n>/class<k>/<i>.jpg: smooth gradients plus noise, ~400x300 (sizes vary a little)."""
    out = os.path.join(root, f"jpeg400x300_{n}")
    marker = os.path.join(out, ".complete")
    if os.path.exists(marker):
        return out
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    for i in range(n):
        k = i % _CLASSES
        d = os.path.join(out, f"class{k}")
        os.makedirs(d, exist_ok=True)
        base = np.stack([(xx * (k + 1) / 4) % 255, (yy * (k + 2) / 3) % 255, ((xx + yy) / 3 + 25 * k) % 255], -1)
        arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        h, w = 300 - int(rng.integers(0, 20)), 400 - int(rng.integers(0, 20))
        Image.fromarray(arr[:h, :w]).save(os.path.join(d, f"{i:05d}.jpg"), "JPEG", quality=90)
    open(marker, "w").close()
    return out


def run_loop(input_dir: str, out_dir: str) -> tuple[float, float]:
    """The plain loop; (wall, CPU) seconds of the per-image work (file listing excluded, as for Beam)."""
    import tensorflow as tf

    from pipelines import image_ops, schema
    from pipelines.readers import read_image_folder

    records = read_image_folder(input_dir)
    names = sorted({r.label for r in records})
    label_index = {n: i for i, n in enumerate(names)}
    feats = schema.features(names, 3, "jpeg")
    limits = image_ops.DecodeLimits()
    start, cpu = time.perf_counter(), time.process_time()
    with tf.io.TFRecordWriter(os.path.join(out_dir, "loop.tfrecord")) as w:
        for r in records:
            with open(r.path, "rb") as f:
                data = f.read()
            image = image_ops.resize(image_ops.decode_image(data, limits, 3), _IMAGE_SIZE, "pad")
            encoded = image_ops.encode(image, "jpeg", 90)
            w.write(schema.serialize(feats, image=encoded, label=label_index[r.label], key=r.key, source=r.source))
    return time.perf_counter() - start, time.process_time() - cpu


def run_beam_here(input_dir: str, out_dir: str) -> tuple[float, float]:
    """The job on the in-process (in_memory) runner, called here: (wall, CPU) seconds of run_build.

    CPU time is what the machine's other load cannot inflate (much): it measures Beam's own
    overhead even when the cores are shared.
    """
    from pipelines import build
    from pipelines.readers import read_image_folder

    records = read_image_folder(input_dir)
    names = sorted({r.label for r in records})
    opts = build.BuildOptions(output_dir=out_dir, dataset_name="bench", image_size=_IMAGE_SIZE)
    start, cpu = time.perf_counter(), time.process_time()
    build.run_build(records, names, opts, ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                                           "--direct_num_workers=1"], input_dir)
    return time.perf_counter() - start, time.process_time() - cpu


def run_beam(input_dir: str, out_dir: str, runner_args: list[str]) -> tuple[float, float]:
    """(job seconds from stats.json, whole command seconds) of one build."""
    cmd = [sys.executable, "-m", "pipelines.build_tfrecords", f"--input_dir={input_dir}", f"--output_dir={out_dir}",
           "--dataset_name=bench", f"--image_size={_IMAGE_SIZE}", *runner_args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    with open(os.path.join(out_dir, "bench", "1.0.0", "stats.json")) as f:
        return json.load(f)["wall_time_seconds"], total


_DOUBLE = "beam-2 on twice the images (--scale_check)"
_HERE = "beam-1 in_memory, run_build called in the bench process"
VARIANTS = {
    "beam-2 (default: multi_processing, all cores)": [],
    "beam-1 in_memory (in-process, 1 worker)": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "beam-1 multi_processing (1 worker)": ["--direct_num_workers=1"],
}


def main(argv):
    del argv
    n = _IMAGES.value
    load_before = os.getloadavg()[0]
    input_dir = make_images(_CACHE.value, n)
    double_dir = make_images(_CACHE.value, 2 * n) if _SCALE.value else None
    small_n = max(20, n // 10)
    small_dir = make_images(_CACHE.value, small_n)
    times: dict[str, list[float]] = {"loop": []}
    totals: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {"loop": [], _HERE: [], "small loop": [], "small beam": []}
    for rep in range(_REPEATS.value):
        with tempfile.TemporaryDirectory() as tmp:
            wall, c = run_loop(input_dir, tmp)
        times["loop"].append(wall)
        cpu["loop"].append(c)
        with tempfile.TemporaryDirectory() as tmp:
            wall, c = run_beam_here(input_dir, tmp)
        times.setdefault(_HERE, []).append(wall)
        cpu[_HERE].append(c)
        for name, fn in (("small loop", run_loop), ("small beam", run_beam_here)):
            with tempfile.TemporaryDirectory() as tmp:
                cpu[name].append(fn(small_dir, tmp)[1])
        for name, args in VARIANTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                job, total = run_beam(input_dir, tmp, args)
            times.setdefault(name, []).append(job)
            totals.setdefault(name, []).append(total)
        if double_dir:
            with tempfile.TemporaryDirectory() as tmp:
                job, total = run_beam(double_dir, tmp, [])
            times.setdefault(_DOUBLE, []).append(job)
            totals.setdefault(_DOUBLE, []).append(total)
        print(f"run {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    loop = med["loop"]
    beam2 = med["beam-2 (default: multi_processing, all cores)"]
    beam1 = min(med[k] for k in times if k.startswith("beam-1"))
    speedup, overhead = loop / beam2, beam1 / loop - 1
    lines = [
        f"### {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {n} JPEGs ~400x300 -> "
        f"{_IMAGE_SIZE}px, {_REPEATS.value} runs (medians)",
        "",
        f"`{' '.join(['python -m bench.bench_build'] + sys.argv[1:])}` on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} "
        "(the 2 cores are shared with other jobs; see the CPU-time line)",
        "",
        "| variant | seconds (median) | images/s | all runs (s) | whole command (s) |",
        "|---|---|---|---|---|",
    ]
    for k, v in times.items():
        tot = f"{statistics.median(totals[k]):.2f}" if k in totals else "-"
        count = 2 * n if k == _DOUBLE else n
        lines.append(f"| {k} | {med[k]:.2f} | {count / med[k]:.0f} | {', '.join(f'{x:.2f}' for x in v)} | {tot} |")
    lines += [
        "",
        f"- speed-up of the default runner over the loop: **{speedup:.2f}x** (target >= 1.6x: "
        f"{'met' if speedup >= 1.6 else 'MISSED'})",
        f"- Beam overhead on one worker (best 1-worker mode vs loop): **{overhead:+.1%}** (target < 15%: "
        f"{'met' if overhead < 0.15 else 'MISSED'})",
    ]
    if _DOUBLE in med:
        per_image = (med[_DOUBLE] - beam2) / n
        if per_image <= 0 or per_image * n > med[_DOUBLE]:
            lines.append(f"- default runner on {2 * n} images took {med[_DOUBLE]:.2f} s vs {beam2:.2f} s on {n}: "
                         "too noisy to split into start-up and per-image cost")
        else:
            fixed = beam2 - per_image * n
            lines.append(f"- default runner = {fixed:.1f} s fixed start-up + {per_image * 1e3:.2f} ms/image "
                         f"(loop: {loop / n * 1e3:.2f} ms/image): steady-state speed-up "
                         f"{(loop / n) / per_image:.2f}x"
                         + (f", 1.6x from about {fixed / (loop / n / 1.6 - per_image):,.0f} images"
                            if loop / n / 1.6 > per_image else ", never 1.6x at this per-image cost"))
    cpu_overhead = statistics.median(cpu[_HERE]) / statistics.median(cpu["loop"]) - 1
    lines.append(f"- CPU seconds (medians; robust to the other load on the machine): loop "
                 f"{statistics.median(cpu['loop']):.2f}, {_HERE} {statistics.median(cpu[_HERE]):.2f}: "
                 f"Beam overhead in CPU time **{cpu_overhead:+.1%}**")
    # cpu(n) = fixed + n * per_image, from the n and n/10 runs.
    c = {k: statistics.median(v) for k, v in cpu.items()}
    beam_per = (c[_HERE] - c["small beam"]) / (n - small_n)
    loop_per = (c["loop"] - c["small loop"]) / (n - small_n)
    beam_fixed = c[_HERE] - n * beam_per
    line = (f"- in CPU time, 1-worker Beam = {beam_fixed:.2f} s fixed + {beam_per * 1e3:.2f} ms/image, loop "
            f"{loop_per * 1e3:.2f} ms/image (per-image overhead {beam_per / loop_per - 1:+.1%})")
    if 1.15 * loop_per > beam_per:
        line += f"; overhead under 15% from about {beam_fixed / (1.15 * loop_per - beam_per):,.0f} images"
    lines.append(line)
    lines.append("")
    text = "\n".join(lines)
    print(text)
    results.record("## bench_build: Beam TFRecord build vs a plain loop", text, _RESULTS.value)


if __name__ == "__main__":
    app.run(main)
