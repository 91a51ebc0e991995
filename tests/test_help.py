"""`--help` of every program, as a user runs it: exit 0, at once, without importing TensorFlow, Keras,
TFDS or Beam (issue #15), and the usage examples of the module docstrings shown as written."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).parents[1]
HEAVY = {"tensorflow", "keras", "tensorflow_datasets", "apache_beam"}

# program -> what its help must show (absl wraps help at 80 columns: compared with white space folded)
PROGRAMS = {
    "crawler.crawl": ["--out_dir", "--url_template='http://127.0.0.1:8000/search?q={query}' \\"],
    "crawler.flowersite": ["--port", "--per_class"],
    "pipelines.build_tfrecords": ["--input_dir", "--output_dir=workspace/tfrecords \\"],
    "pipelines.inspect_dataset": ["--contact_sheet"],
    "pipelines.demo": ["--workspace"],
    "trainer.train": [
        "--run_dir=workspace/runs/demo \\",
        "--learning_rate: Base learning rate. Must be > 0.",  # help and bounds, from the config field
        "--optimizer: <sgd|adam|adamw|rmsprop>: Optimizer.",  # choices, from the registry
        "--schedule: <constant|step|cosine|exponential|plateau>:",
        "adamw: its decoupled weight decay only, the model's kernel L2 is off",
        "--preset: Named recipe:",
    ],
    "trainer.predict": ["--top_k: Classes to print per image."],
    "trainer.models": ["--list", "--family", "--json", "--measure", "Exit codes"],
}


def test_every_program_of_setup_py_is_checked_here():
    setup = (ROOT / "setup.py").read_text()
    scripts = set(re.findall(r'"[\w-]+=([\w.]+?)(?:\.__main__)?:\w+"', setup))
    assert len(scripts) >= 7 and scripts <= set(PROGRAMS), scripts ^ set(PROGRAMS)


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_help_exits_0_at_once_without_heavy_imports(program):
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", program, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    for expected in PROGRAMS[program]:
        assert expected in text, (expected, proc.stdout[-3000:])
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "absl" in imported  # what -X importtime reports is seen
    assert not imported & HEAVY, sorted(imported & HEAVY)
    assert seconds < 10, seconds  # about 0.1-0.4 s alone; the goal is < 3 s
