"""The demo chain on a local disk and on gs:// side by side: what a bucket costs each stage.

    python -m bench.bench_storage --repeats=3

Runs `pipelines.demo`'s chain (local flower site -> crawl -> Beam build -> mirrored training,
1 epoch of cifar_resnet20 at 32 px -> predict on the test images) once with a local workspace
and once with `--workspace=gs://...` on the GCS emulator the tests use (tests/objectstore.py;
Beam and TensorFlow both reach it through their real GCS clients), alternating, `--repeats`
times. Prints per-stage medians and the gs/local ratio, and appends them with this command to
bench/RESULTS.md. The emulator answers on 127.0.0.1 in microseconds, so the ratio is the cost
of the clients and of our storage layer (requests, copies for renames, segment merges), not of
a network: against real GCS each request also pays its round trip.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from bench import results

_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs of each variant (alternating).", lower_bound=1)
_PER_CLASS = flags.DEFINE_integer("per_class", 14, "Images per class on the site.", lower_bound=4)
_CLASSES = flags.DEFINE_string("classes", "daisy,sunflower,lavender", "Classes crawled and trained on.")

STAGES = ("crawl", "tfrecords", "train", "predict", "total")


def run_chain(workspace: str) -> dict[str, float]:
    """One demo chain plus a predict over the test split's images; seconds per stage."""
    from pipelines.demo import DemoConfig, run_demo
    from storage import fs

    cfg = DemoConfig(
        workspace=workspace,
        classes=_CLASSES.value,
        per_class=_PER_CLASS.value,
        image_size=32,
        epochs=1,
        model="cifar_resnet20",
        extra_train_flags=("--batch_size=8",),
    )
    start = time.perf_counter()
    summary = run_demo(cfg)
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.predict",
            f"--run_dir={cfg.run_dir}",
            fs.join(cfg.raw_dir, _CLASSES.value.split(",")[0]),
        ],
        check=True,
        capture_output=True,
    )
    seconds = {k: summary["seconds"][k] for k in ("crawl", "tfrecords", "train")}
    seconds["predict"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    return seconds


def main(argv):
    del argv
    from tests.objectstore import GcsServer

    load_before = os.getloadavg()[0]
    times: dict[str, dict[str, list[float]]] = {"local": {s: [] for s in STAGES}, "gs": {s: [] for s in STAGES}}
    with tempfile.TemporaryDirectory(prefix="bench_storage_") as tmp, GcsServer(tmp) as gcs:
        os.environ.update(gcs.env())
        gcs.create_bucket("bench")
        for r in range(_REPEATS.value):
            for name in ("local", "gs") if r % 2 == 0 else ("gs", "local"):
                workspace = os.path.join(tmp, f"ws{r}") if name == "local" else f"gs://bench/ws{r}"
                seconds = run_chain(workspace)
                for stage, v in seconds.items():
                    times[name][stage].append(v)
                print(f"run {r + 1} {name}: " + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()), flush=True)
    report(times, load_before)


def report(times, load_before) -> None:
    med = {name: {s: statistics.median(v) for s, v in stages.items()} for name, stages in times.items()}
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (
        f"python -m bench.bench_storage --repeats={_REPEATS.value} --per_class={_PER_CLASS.value} "
        f"--classes={_CLASSES.value}"
    )
    rows = [
        f"| {s} | {med['local'][s]:.1f} | {med['gs'][s]:.1f} | {med['gs'][s] / med['local'][s]:.2f}x |" for s in STAGES
    ]
    text = "\n".join(
        [
            f"### {when}",
            "",
            f"`{command}`",
            "",
            f"{platform.node()}, {os.cpu_count()} cores, load {load_before:.1f} before; medians of {_REPEATS.value} "
            "alternating runs, seconds (each stage a fresh process, imports included).",
            "",
            "| stage | local disk | gs:// (emulator) | gs / local |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    results.record("## Storage: the demo chain on a local disk vs on gs://", text)


if __name__ == "__main__":
    app.run(main)
