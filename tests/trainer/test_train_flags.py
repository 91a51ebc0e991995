"""trainer.train's flags, made from the config's fields, checked before any work (their `--help`:
tests/test_help.py)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "flags,message",
    [
        # --decay_rate, the old name, reaches the field of the schedule in effect.
        (["--schedule=plateau", "--decay_rate=-1"], "error: --plateau_factor=-1.0: must be > 0"),
        (["--schedule=exponential", "--decay_rate=-1"], "error: --exponential_decay_rate=-1.0: must be > 0"),
        (["--schedule=step", "--boundaries=200,100"], "error: --boundaries=200,100: must increase"),
        (["--optimizer=lbfgs"], "error: flag --optimizer=lbfgs: value should be one of <sgd|adam|adamw|rmsprop>"),
        (["--config_file=CONFIG"], "error: CONFIG: epochs='many' is not an integer"),
    ],
)
def test_flags_and_files_reach_their_section_and_are_checked_before_any_work(tmp_path, flags, message):
    config = tmp_path / "c.yaml"
    config.write_text("optim: {epochs: many}\n")
    flags = [f.replace("CONFIG", str(config)) for f in flags]
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.train", f"--run_dir={tmp_path / 'run'}", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(message.replace("CONFIG", str(config)))
    assert not (tmp_path / "run").exists()
