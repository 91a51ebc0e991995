"""`python -m trainer.models --list` reads the pinned counts: instant, and without TensorFlow.

Each command runs in a subprocess, so the timings include Python's start-up and what the
listing imports (TensorFlow alone takes seconds). The limits are loose (the machine is shared);
the listing takes well under a second here.
"""

import json
import subprocess
import sys
import time

import pytest

from trainer.models import get_spec, list_families, list_models

LIMIT_S = 10.0

# Runs the listing in-process and says which heavy modules it imported.
LIST_AND_REPORT_IMPORTS = """
import json, sys
from trainer.models import __main__ as cli
code = cli.run(["flower-models", "--list"])
heavy = sorted(m for m in ("tensorflow", "keras", "numpy") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


def run_models(*args, code=None):
    t0 = time.perf_counter()
    argv = [sys.executable, "-m", "trainer.models", *args] if code is None else [sys.executable, "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return proc, time.perf_counter() - t0


def test_list_is_fast_and_imports_no_tensorflow():
    proc, seconds = run_models(code=LIST_AND_REPORT_IMPORTS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert seconds < LIMIT_S
    for name in list_models():
        assert name in proc.stdout


def test_list_from_the_command_line_finishes_quickly():  # its --help: tests/test_help.py
    proc, seconds = run_models("--list")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert seconds < LIMIT_S, f"--list took {seconds:.1f} s"


def test_json_matches_the_specs():
    proc, _ = run_models("--list", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        spec = get_spec(r["name"])
        assert (r["params"], r["trainable_params"], r["flops"]) == (spec.params, spec.trainable_params, spec.flops)
        assert r["params"] > 0 and r["flops"] > 0
        assert tuple(r["input_shape"]) == spec.default_input_shape
        assert (r["family"], r["num_classes"], r["reference"]) == (spec.family, spec.num_classes, spec.reference)


def test_table_shows_the_pinned_counts():
    proc, _ = run_models("--list", "--models=cifar_resnet20,seed004_resnext")
    out = proc.stdout
    assert "cifar_resnet20" in out and "271,098" in out and "0.08" in out
    assert "seed004_resnext" in out and "5,671,872" in out and "004_5c920be0a47925d0.txt" in out
    assert "GFLOPs" in out and "32x32x3" in out
    assert "resnet18 " not in out


@pytest.mark.parametrize("family", list_families())
def test_family_filters(family):
    proc, _ = run_models("--list", f"--family={family}", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [r["name"] for r in json.loads(proc.stdout)]
    assert names == list_models(family) and names
    assert all(get_spec(n).family == family for n in names)


@pytest.mark.parametrize(
    "args,expected",
    [
        (("--list", "--family=transformer"), "error: Unknown family 'transformer'. Known families: alexnet"),
        (("--list", "--models=resnet9000"), "error: Unknown model 'resnet9000'. Known models: alexnet"),
        (("--list", "--family=vgg", "--models=vgg11"), "error: --family and --models"),
        ((), "error: pass exactly one of"),
    ],
)
def test_unknown_family_or_name_is_one_error_line_and_exit_2(args, expected):
    proc, seconds = run_models(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert seconds < LIMIT_S
