"""`--help` of every crawler program answers at once, without importing TensorFlow or Beam (issue #15)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import time

import pytest

# program -> a flag its help must show
PROGRAMS = {"crawler.crawl": "--out_dir", "crawler.flowersite": "--port"}
HEAVY = ("tensorflow", "apache_beam")

# Runs the program as `python -m` does, then says which heavy modules it imported.
_PROBE = f"""
import runpy, sys
program = sys.argv[1]
sys.argv = [program, "--help"]
code = None
try:
    runpy.run_module(program, run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
print("imported:", *sorted(m for m in {HEAVY} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


def test_every_crawler_program_of_setup_py_is_checked_here():
    setup = (pathlib.Path(__file__).parents[2] / "setup.py").read_text()
    scripts = set(re.findall(r'"[\w-]+=(crawler[\w.]*?)(?:\.__main__)?:\w+"', setup))
    assert scripts and scripts <= set(PROGRAMS), scripts


@pytest.mark.parametrize("program,flag", sorted(PROGRAMS.items()))
def test_help_is_quick_and_imports_neither_tensorflow_nor_beam(program, flag):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _PROBE, program], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert flag in proc.stdout, proc.stdout[-3000:]
    assert "imported:\n" in proc.stderr, proc.stderr[-3000:]  # none of HEAVY
    assert seconds < 10, seconds
