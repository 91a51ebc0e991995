"""The end-to-end demo: local flower site -> crawl -> Beam TFRecords -> distributed training.

    python -m pipelines.demo            # what `make demo` runs

1. starts the local flower site on a free port of 127.0.0.1;
2. crawls it with `python -m crawler.crawl` (the real crawler) into <workspace>/raw/;
3. builds TFRecords with `python -m pipelines.build_tfrecords` (Beam's local runner) into
   <workspace>/tfrecords/flowers/1.0.0/;
4. trains with `python -m trainer.train` under MirroredStrategy over 2 logical CPUs into
   <workspace>/runs/demo/;
5. prints the test accuracy, per-class accuracy and where it wrote what.
Each stage runs as its own program, exactly as a user would run it (its command is printed,
with `python` for this interpreter). The demo starts from scratch: it replaces the raw/,
tfrecords/flowers/ and runs/demo/ folders it owns, under the workspace's lock (<workspace>/.lock:
a second demo there stops with exit 2 naming the first). --workspace may be a local folder or a
gs:// bucket path (every stage then reads and writes there). The output is short (about 70 lines
on a terminal, 30 of them the epochs' lines); `-v 1` passes `--verbosity=1` to every stage and
shows all they log.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

from absl import app, flags, logging

import cli
from cli.console import quiet_libraries
from storage import StorageError, fs, lock


def _define_flags() -> None:
    """Defined only when run as a program: tests import this module next to other programs'
    flags (e.g. --classes, --image_size), and absl flags are global."""
    flags.DEFINE_string("workspace", "workspace", "Workspace folder (see WORKSPACE.md).")
    flags.DEFINE_string("classes", "all", "Classes to crawl and train on.")
    flags.DEFINE_integer("per_class", 130, "Images per class on the site (and crawled at most).")
    flags.DEFINE_integer("image_size", 64, "Image size of the TFRecords and the model input.")
    flags.DEFINE_integer("epochs", 0, "Training epochs (0: the demo preset's).")
    flags.DEFINE_string("model", "", "Zoo model (empty: the demo preset's).")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    workspace: str = "workspace"
    classes: str = "all"
    per_class: int = 130
    image_size: int = 64
    epochs: int = 0
    model: str = ""
    cpu_replicas: int = 2
    dataset: str = "flowers"
    version: str = "1.0.0"
    extra_train_flags: tuple[str, ...] = ()
    verbosity: int = 0  # > 0: passed on to every stage

    @property
    def raw_dir(self) -> str:
        return fs.join(self.workspace, "raw")

    @property
    def tfrecords_dir(self) -> str:
        return fs.join(self.workspace, "tfrecords")

    @property
    def data_dir(self) -> str:
        return fs.join(self.tfrecords_dir, self.dataset, self.version)

    @property
    def run_dir(self) -> str:
        return fs.join(self.workspace, "runs", "demo")


def command_line(argv: list[str]) -> str:
    """The command as a user types it: `python` for this interpreter."""
    return " ".join(["python" if argv[0] == sys.executable else argv[0], *argv[1:]])


def _stage(title: str, argv: list[str], verbosity: int = 0) -> float:
    if verbosity > 0:
        argv = [*argv, f"--verbosity={verbosity}"]
    print(f"=== {title}: {command_line(argv)}", flush=True)
    t0 = time.time()
    proc = subprocess.run(argv)
    if proc.returncode != 0:
        raise SystemExit(f"demo: stage '{title}' failed with exit code {proc.returncode}")
    seconds = time.time() - t0
    print(f"=== {title}: done in {seconds:.0f}s", flush=True)
    return seconds


def run_demo(cfg: DemoConfig) -> dict:
    """Runs the four stages; returns a summary (also written to <workspace>/demo_summary.json).
    Raises storage.LockHeld (a StorageError) if another demo is running in the workspace."""
    fs.check(cfg.workspace, "--workspace", tensorflow=True)  # the trainer writes there too
    fs.preflight(cfg.workspace, "--workspace", write=True)
    # One demo at a time in a workspace: a second one would delete the first's folders under it.
    with lock.hold(cfg.workspace, "demo"):
        return _run_stages(cfg)


def _run_stages(cfg: DemoConfig) -> dict:
    from crawler.flowersite import FlowerSite

    for d in (cfg.raw_dir, fs.join(cfg.tfrecords_dir, cfg.dataset), cfg.run_dir):
        fs.rmtree(d)
    fs.makedirs(cfg.workspace)
    py = sys.executable
    timings = {}
    t_start = time.time()
    from crawler.classes import parse_classes

    with FlowerSite(per_class=cfg.per_class) as site:
        t0 = time.time()
        n = site.prerender(classes=tuple(c.slug for c in parse_classes(cfg.classes)))
        print(f"=== flower site: {site.url} ({n} images rendered in {time.time() - t0:.0f}s)", flush=True)
        timings["crawl"] = _stage(
            "crawl",
            [
                py,
                "-m",
                "crawler.crawl",
                "--source=html",
                f"--url_template={site.search_template()}",
                f"--classes={cfg.classes}",
                f"--out_dir={cfg.raw_dir}",
                "--allow_private_hosts",
                "--per_host_delay=0",
                "--per_host_concurrency=8",
                "--workers=8",
                f"--max_per_class={cfg.per_class}",
            ],
            cfg.verbosity,
        )
    timings["tfrecords"] = _stage(
        "Beam TFRecords",
        [
            py,
            "-m",
            "pipelines.build_tfrecords",
            f"--input_dir={cfg.raw_dir}",
            f"--output_dir={cfg.tfrecords_dir}",
            f"--dataset_name={cfg.dataset}",
            f"--version={cfg.version}",
            f"--image_size={cfg.image_size}",
            "--overwrite",
        ],
        cfg.verbosity,
    )
    train = [
        py,
        "-m",
        "trainer.train",
        f"--data_dir={cfg.data_dir}",
        f"--run_dir={cfg.run_dir}",
        "--preset=demo_flowers",
        "--strategy=mirrored",
        f"--cpu_replicas={cfg.cpu_replicas}",
        f"--image_size={cfg.image_size}",
    ]
    if cfg.epochs:
        train.append(f"--epochs={cfg.epochs}")
    if cfg.model:
        train.append(f"--model={cfg.model}")
    timings["train"] = _stage(
        f"train (MirroredStrategy, {cfg.cpu_replicas} logical CPUs)", train + list(cfg.extra_train_flags), cfg.verbosity
    )
    report = fs.read_json(fs.join(cfg.run_dir, "report.json"))
    summary = {
        "test_top1": report["splits"]["test"]["top1"],
        "test_top5": report["splits"]["test"]["top5"],
        "per_class_accuracy": {k: v["recall"] for k, v in report["per_class"].items()},
        "seconds": {**{k: round(v, 1) for k, v in timings.items()}, "total": round(time.time() - t_start, 1)},
        "paths": {
            "raw": cfg.raw_dir,
            "manifest": fs.join(cfg.raw_dir, "manifest.jsonl"),
            "tfrecords": cfg.data_dir,
            "run": cfg.run_dir,
            "report": fs.join(cfg.run_dir, "report.json"),
            "curves": fs.join(cfg.run_dir, "curves.png"),
            "confusion": fs.join(cfg.run_dir, "confusion.png"),
            "model": report.get("model_keras"),
            "export": report.get("export_dir"),
        },
    }
    fs.write_json(summary_file(cfg), summary)
    return summary


def summary_file(cfg: DemoConfig) -> str:
    return fs.join(cfg.workspace, "demo_summary.json")


def summary_lines(summary: dict, summary_path: str) -> list[str]:
    """The closing lines (every path is in the summary file too)."""
    s, paths = summary["seconds"], summary["paths"]
    worst = sorted(summary["per_class_accuracy"].items(), key=lambda kv: kv[1])
    return [
        f"=== demo finished in {s['total']:.0f}s (crawl {s['crawl']:.0f}s, tfrecords {s['tfrecords']:.0f}s, "
        f"train {s['train']:.0f}s)",
        f"test accuracy: {summary['test_top1']:.4f} (top-5 {summary['test_top5']:.4f})",
        "per-class accuracy, worst first: " + ", ".join(f"{k} {v:.2f}" for k, v in worst),
        f"data: {paths['raw']} (crawl), {paths['tfrecords']} (TFRecords)",
        f"run:  {paths['run']} (report.json, curves.png, confusion.png, model.keras, export/)",
        f"all paths and timings: {summary_path}",
    ]


def main(argv):
    del argv
    f = flags.FLAGS
    cfg = DemoConfig(
        workspace=f.workspace,
        classes=f.classes,
        per_class=f.per_class,
        image_size=f.image_size,
        epochs=f.epochs,
        model=f.model,
        verbosity=max(0, f.verbosity),
    )
    if f.verbosity < 1:  # the flower site's own log lines: the demo says where it is
        logging.set_verbosity(logging.WARNING)
    quiet_libraries()
    try:
        print("\n".join(summary_lines(run_demo(cfg), summary_file(cfg))), flush=True)
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def run():
    _define_flags()
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
