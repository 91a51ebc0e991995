"""Benchmark: the Beam TFRecord build vs a plain single-process loop doing the same per-image work.

    python -m bench.bench_build [--sizes=2000,10000,20000] [--repeats=3] [--cache_dir=bench/.cache]

On the same synthetic JPEGs (about 400x300, quality 90, generated once into --cache_dir), for
each size N of --sizes:
  loop      one Python process calling the job's own step functions: read, decode/validate,
            resize to 224 (pad), encode JPEG, serialize the same example, frame and write it
            to one TFRecord file;
  beam-2    the job with the default runner of `python -m pipelines.build_tfrecords`
            (multi-process DirectRunner on all cores: 2 here);
  beam-1    the job on one worker: in-process (in_memory) and multi-process with 1 worker.
Every variant runs in a fresh Python process of its own, and the order of the variants rotates
between repeats. Inputs are copied to --work_dir (RAM) and every variant writes there, so no
variant times the disk. A Beam variant's time is the whole of `build.run_build` (splits,
pipeline, metadata, stats, histogram, publish); like the loop's, it leaves out the process's
imports and the file listing, which the "whole process" column includes (start to exit, as a
command would take). CPU time includes the worker processes. Medians over --repeats runs,
the variants of one repeat side by side. With two sizes or more, each time is also split
into a fixed start-up and a per-image cost (least squares over the sizes). The numbers and
the exact command are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
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

_SIZES = flags.DEFINE_list(
    "sizes",
    ["2000", "10000", "20000"],
    "Numbers of JPEGs (at least 2,000 for the recorded numbers); the fixed and per-image costs are fitted over them.",
)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs of each variant; medians are reported.")
_CACHE = flags.DEFINE_string(
    "cache_dir",
    os.path.join(os.path.dirname(__file__), ".cache"),
    "Where the synthetic JPEGs are generated once (git-ignored).",
)
_RESULTS = flags.DEFINE_string("results", results.PATH, "Results file.")
_CHILD = flags.DEFINE_enum(
    "child",
    "",
    ["", "loop", "beam"],
    "Internal: run one variant (the loop, or the job "
    "with --child_runner_args) on --child_input into --child_output and print its "
    "(wall, CPU) seconds as JSON.",
)
_CHILD_RUNNER_ARGS = flags.DEFINE_list("child_runner_args", [], "Internal, see --child.")
_CHILD_INPUT = flags.DEFINE_string("child_input", "", "Internal, see --child.")
_CHILD_OUTPUT = flags.DEFINE_string("child_output", "", "Internal, see --child.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir",
    "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
    "RAM-backed folder the inputs are copied to and every variant writes into: these machines page "
    "out idle page cache (DAMON), so images read from disk would time the disk, first variant first.",
)
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
    """The plain loop over the job's step functions; (wall, CPU) seconds (file listing excluded, as for Beam)."""
    import imaging
    from pipelines import schema, shards, transforms
    from pipelines.options import JobOptions
    from pipelines.readers.folder import read_image_folder

    records = read_image_folder(input_dir)
    names = sorted({r.label for r in records})
    opts = JobOptions(output_dir=out_dir, dataset_name="bench", image_size=_IMAGE_SIZE)
    label_index = {n: i for i, n in enumerate(names)}
    feats = schema.features(names, opts.channels, opts.encoding, opts.layout, opts.fixed_size)
    limits = imaging.Limits(opts.min_side, opts.max_pixels)
    start, cpu = time.perf_counter(), time.process_time()
    with open(os.path.join(out_dir, "loop.tfrecord"), "wb") as out:
        for r in records:
            with open(r.path, "rb") as f:
                image = imaging.decode_array(f.read(), limits, opts.channels)
            for example in transforms.make_examples(transforms.Decoded(r, image), opts, label_index, feats):
                out.write(shards.tfrecord_frame(example.data))  # records without a split: no pixel sums
    return time.perf_counter() - start, time.process_time() - cpu


def run_beam(input_dir: str, out_dir: str, runner_args: list[str]) -> tuple[float, float]:
    """The job as `python -m pipelines.build_tfrecords` runs it, plus `runner_args`: (wall, CPU) seconds of run_build.

    CPU time includes the runner's worker processes (children the runner has waited for).
    """
    from pipelines import build, build_tfrecords
    from pipelines.options import JobOptions
    from pipelines.readers import Input
    from pipelines.readers.folder import read_image_folder

    records = read_image_folder(input_dir)
    names = sorted({r.label for r in records})
    opts = JobOptions(output_dir=out_dir, dataset_name="bench", image_size=_IMAGE_SIZE)
    start, cpu = time.perf_counter(), _cpu_with_children()
    build.run_build(Input(records, names, input_dir), opts, build_tfrecords.pipeline_args(runner_args))
    return time.perf_counter() - start, _cpu_with_children() - cpu


def _cpu_with_children() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


LOOP = "loop"
DEFAULT = "beam-2 (default: multi_processing, all cores)"
HERE = "beam-1 in_memory (in-process, 1 worker)"
MP1 = "beam-1 multi_processing (1 worker)"
# (name, --child, --child_runner_args)
VARIANTS = [
    (LOOP, "loop", []),
    (HERE, "beam", ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]),
    (DEFAULT, "beam", []),
    (MP1, "beam", ["--direct_num_workers=1"]),
]


def fit(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """(fixed seconds, seconds per image) of seconds = fixed + n * per_image, by least squares."""
    per, fixed = np.polyfit(np.array(sizes, float), np.array(seconds, float), 1)
    return float(fixed), float(per)


def run_child(child: str, runner_args: list[str], input_dir: str, out_dir: str) -> tuple[float, float, float]:
    """One variant in a fresh Python process of its own: (wall, CPU, whole process) seconds.

    Each variant starts from the same clean process state (nothing left over from the others).
    """
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_build",
        f"--child={child}",
        f"--child_input={input_dir}",
        f"--child_output={out_dir}",
    ]
    if runner_args:
        cmd.append("--child_runner_args=" + ",".join(runner_args))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    whole = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    wall, cpu = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, cpu, whole


def measure(input_dir: str, rotate: int) -> tuple[dict, dict, dict]:
    """One repeat of every variant on one input: (wall, CPU, whole process) seconds by variant.

    The order of the variants rotates with `rotate`, so none always runs first (or last).
    """
    wall, cpu, whole = {}, {}, {}
    first = rotate % len(VARIANTS)
    for name, child, runner_args in VARIANTS[first:] + VARIANTS[:first]:
        with tempfile.TemporaryDirectory(dir=_WORK_DIR.value) as tmp:
            wall[name], cpu[name], whole[name] = run_child(child, runner_args, input_dir, tmp)
    order = [name for name, _, _ in VARIANTS]
    return {k: wall[k] for k in order}, {k: cpu[k] for k in order}, {k: whole[k] for k in order}


def report(sizes: list[int], wall: dict, cpu: dict, whole: dict, load_before: float) -> str:
    med = {n: {k: statistics.median(v) for k, v in wall[n].items()} for n in sizes}
    lines = [
        f"### {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {'/'.join(map(str, sizes))} JPEGs "
        f"~400x300 -> {_IMAGE_SIZE}px, {_REPEATS.value} runs (medians)",
        "",
        f"`{' '.join(['python -m bench.bench_build'] + sys.argv[1:])}` on {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}; "
        f"inputs and outputs in {_WORK_DIR.value}",
        "",
        "| images | variant | seconds (median) | images/s | vs loop | all runs (s) | CPU s (median) "
        "| whole process (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for k, v in wall[n].items():
            c = f"{statistics.median(cpu[n][k]):.2f}"
            tot = f"{statistics.median(whole[n][k]):.2f}"
            lines.append(
                f"| {n} | {k} | {med[n][k]:.2f} | {n / med[n][k]:.0f} | {med[n][LOOP] / med[n][k]:.2f}x | "
                f"{', '.join(f'{x:.2f}' for x in v)} | {c} | {tot} |"
            )
    lines.append("")
    for n in sizes:
        speedup = med[n][LOOP] / med[n][DEFAULT]
        overhead = med[n][HERE] / med[n][LOOP] - 1
        cpu_overhead = statistics.median(cpu[n][HERE]) / statistics.median(cpu[n][LOOP]) - 1
        # The same ratios within each repeat (the variants of a repeat ran back to back), then their median:
        # steadier than ratios of medians when the machine's speed drifts between repeats.
        paired_speedup = statistics.median(lo / d for lo, d in zip(wall[n][LOOP], wall[n][DEFAULT]))
        paired_overhead = statistics.median(h / lo - 1 for lo, h in zip(wall[n][LOOP], wall[n][HERE]))
        lines.append(
            f"- {n} images: default runner **{speedup:.2f}x** the loop (paired per repeat: "
            f"{paired_speedup:.2f}x; target >= 1.6x: {'met' if speedup >= 1.6 else 'MISSED'}); Beam "
            f"overhead on one worker **{overhead:+.1%}** in wall time (paired: {paired_overhead:+.1%}), "
            f"{cpu_overhead:+.1%} in CPU time (target < 15%: {'met' if overhead < 0.15 else 'MISSED'})"
        )
    if len(sizes) > 1:
        parts = []
        for k in (LOOP, DEFAULT, HERE, MP1):
            fixed, per = fit(sizes, [med[n][k] for n in sizes])
            parts.append(f"{k}: {fixed:+.2f} s + {per * 1e3:.3f} ms/image")
        loop_per = fit(sizes, [med[n][LOOP] for n in sizes])[1]
        d_fixed, d_per = fit(sizes, [med[n][DEFAULT] for n in sizes])
        line = (
            f"- fitted over the sizes (seconds = fixed + n x per image): {'; '.join(parts)}. Default runner at "
            f"steady state: {loop_per / d_per:.2f}x the loop"
        )
        if loop_per / 1.6 > d_per > 0:
            line += f", 1.6x from about {d_fixed / (loop_per / 1.6 - d_per):,.0f} images"
        lines.append(line)
        # The overhead target's own definition: pipeline time per image on one worker vs the loop's.
        per_image = {k: fit(sizes, [med[n][k] for n in sizes])[1] / loop_per - 1 for k in (HERE, MP1)}
        lines.append(
            "- Beam overhead per image on one worker (fitted, start-up excluded; target < 15%): "
            + "; ".join(f"{k} {v:+.1%} ({'met' if v < 0.15 else 'MISSED'})" for k, v in per_image.items())
        )
    lines.append("")
    return "\n".join(lines)


def main(argv):
    del argv
    if _CHILD.value:
        from pipelines import exit_gc

        exit_gc.skip_final_gc()  # as the command does: the "whole process" time ends like a command's
        if _CHILD.value == "loop":
            got = run_loop(_CHILD_INPUT.value, _CHILD_OUTPUT.value)
        else:
            got = run_beam(_CHILD_INPUT.value, _CHILD_OUTPUT.value, _CHILD_RUNNER_ARGS.value)
        print(json.dumps(got))
        return
    sizes = sorted(int(x) for x in _SIZES.value)
    load_before = os.getloadavg()[0]
    staged = tempfile.mkdtemp(prefix="bench_build_", dir=_WORK_DIR.value)
    try:
        dirs = {n: shutil.copytree(make_images(_CACHE.value, n), os.path.join(staged, str(n))) for n in sizes}
        wall = {n: {} for n in sizes}
        cpu = {n: {} for n in sizes}
        whole = {n: {} for n in sizes}
        for rep in range(_REPEATS.value):
            for n in sizes:
                w, c, t = measure(dirs[n], rep)
                for store, got in ((wall, w), (cpu, c), (whole, t)):
                    for k, v in got.items():
                        store[n].setdefault(k, []).append(v)
                print(f"run {rep + 1}, {n} images: " + ", ".join(f"{k} {v:.2f}s" for k, v in w.items()), flush=True)
    finally:
        shutil.rmtree(staged)
    text = report(sizes, wall, cpu, whole, load_before)
    results.record("## bench_build: Beam TFRecord build vs a plain loop", text, _RESULTS.value)


if __name__ == "__main__":
    app.run(main)
