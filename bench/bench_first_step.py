"""Time to first step: from `python -m trainer.train` starting to its first completed training step.

    python -m bench.bench_first_step [--repeats=3] [--images=2600]

The demo's training (`--preset=demo_flowers --strategy=mirrored --cpu_replicas=2`, 64 px) is
started as a subprocess (imports included) on a generated 20-class dataset the size of the
demo's (130 images per class), once with the `channel_stats` the Beam job writes and once on a
copy without them (the trainer then computes the statistics from up to 1000 train images
first), alternating, `--repeats` times each. Each run is stopped after `--steps` steps. Reported
(medians): the wall time to the first completed step, the steady-state step time (median
interval between step lines after the second step), their ratio, and the time of each phase
the trainer names (trainer/progress.py). Goal: first step under 30 s on 2 cores.
Appends the numbers and this command to bench/RESULTS.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

from bench import results
from bench.datasets import make_folder, make_tfrecords

_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs per variant (medians are reported).")
_IMAGES = flags.DEFINE_integer("images", 2600, "Images in the generated dataset (the demo's: 20 x 130).")
_STEPS = flags.DEFINE_integer("steps", 8, "Training steps to run before stopping a run.")
_CACHE = flags.DEFINE_string("cache_dir", "/tmp/flowerpipe-bench", "Where generated data is kept between runs.")

SECTION = "## Time to first step (bench/bench_first_step.py)"
PHASES = (
    "starting TensorFlow",
    "reading metadata",
    "dataset statistics",
    "building the model",
    "input pipeline",
    "first step (tracing)",
)
_PHASE = re.compile(r"\] (" + "|".join(re.escape(p) for p in PHASES) + r"): ([\d.]+)s")
_STEP = re.compile(r"\] epoch \d+/\d+ step (\d+)/\d+ ")


def without_channel_stats(data_dir: str, out: str) -> str:
    """A copy of the dataset with no channel_stats (metadata.json and stats.json)."""
    if os.path.exists(out):
        shutil.rmtree(out)
    shutil.copytree(data_dir, out)
    for name in ("metadata.json", "stats.json"):
        with open(os.path.join(out, name)) as f:
            doc = {k: v for k, v in json.load(f).items() if k != "channel_stats"}
        with open(os.path.join(out, name), "w") as f:
            json.dump(doc, f)
    return out


def one_run(data_dir: str, steps: int) -> dict:
    """Starts the trainer, reads its lines as they come; stops it after `steps` steps."""
    run_dir = tempfile.mkdtemp(prefix="first-step-")
    argv = [
        sys.executable,
        "-m",
        "trainer.train",
        f"--data_dir={data_dir}",
        f"--run_dir={run_dir}",
        "--preset=demo_flowers",
        "--strategy=mirrored",
        "--cpu_replicas=2",
        "--image_size=64",
        "--epochs=1",
        "--log_every=1",
        "--skip_export",
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    phases, step_times, first_step = {}, {}, None
    done = threading.Event()

    def read():
        nonlocal first_step
        for line in proc.stderr:
            now = time.monotonic() - t0
            if m := _PHASE.search(line):
                phases[m.group(1)] = float(m.group(2))
                if m.group(1) == "first step (tracing)":
                    first_step = now
            elif m := _STEP.search(line):
                step_times[int(m.group(1))] = now
                if int(m.group(1)) >= steps:
                    done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done.wait(timeout=900)
    proc.kill()  # this run's own child, by its handle
    proc.wait()
    reader.join(timeout=5)
    shutil.rmtree(run_dir, ignore_errors=True)
    if first_step is None or len(step_times) < 4:
        raise RuntimeError(f"the trainer stopped before {steps} steps (exit {proc.returncode}): {argv}")
    later = sorted(k for k in step_times if k >= 2)
    intervals = [step_times[b] - step_times[a] for a, b in zip(later, later[1:]) if b == a + 1]
    return {"first_step": first_step, "step": statistics.median(intervals), "phases": phases}


def main(argv):
    del argv
    cache = _CACHE.value
    load_before = os.getloadavg()[0]
    folder = make_folder(os.path.join(cache, "jpg80"), _IMAGES.value, 80)
    with_stats = make_tfrecords(folder, os.path.join(cache, f"tfr64-{_IMAGES.value}"), 64)
    no_stats = without_channel_stats(with_stats, os.path.join(cache, f"tfr64-{_IMAGES.value}-nostats"))
    variants = {"with channel_stats": with_stats, "without (computed at start)": no_stats}
    runs = {name: [] for name in variants}
    for r in range(_REPEATS.value):
        for name, data_dir in variants.items():
            runs[name].append(one_run(data_dir, _STEPS.value))
            print(f"run {r + 1} {name}: {runs[name][-1]}", flush=True)

    med = statistics.median
    command = (
        f"python -m bench.bench_first_step --repeats={_REPEATS.value} --images={_IMAGES.value} --steps={_STEPS.value}"
    )
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, demo_flowers (resnet18, 64 px, batch 64), "
        f"mirrored over 2 logical CPUs, {_IMAGES.value} images",
        "",
        f"Command: `{command}` (2-core CPU, load average before {load_before:.1f}, medians of {_REPEATS.value} "
        "runs each, alternating; seconds from process start, imports included)",
        "",
        "| dataset | first step done | steady step | ratio | " + " | ".join(PHASES) + " |",
        "|---|---|---|---|" + "---|" * len(PHASES),
    ]
    for name, rs in runs.items():
        first, step = med(r["first_step"] for r in rs), med(r["step"] for r in rs)
        cells = [f"{med(r['phases'].get(p, 0.0) for r in rs):.1f}" for p in PHASES]
        each = ", ".join(f"{r['first_step']:.1f}" for r in rs)
        lines.append(
            f"| {name} | {first:.1f} (runs: {each}) | {step:.2f} | {first / step:.0f}x | " + " | ".join(cells) + " |"
        )
    firsts = {name: med(r["first_step"] for r in rs) for name, rs in runs.items()}
    diff = firsts["with channel_stats"] - firsts["without (computed at start)"]
    best = min(firsts.values())
    lines += [
        "",
        f"first step with channel_stats vs without: {diff:+.1f} s; goal first step < 30 s: "
        f"{'met' if best < 30 else 'NOT met'} ({best:.1f} s).",
        "",
    ]
    results.record(SECTION, "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
