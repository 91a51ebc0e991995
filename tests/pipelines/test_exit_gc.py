"""exit_gc: the final collections at exit are skipped once registered, from any caller."""

import subprocess
import sys

import pytest

# A reference cycle whose finaliser prints: only a garbage collection can free it, and the
# interpreter runs one while it exits unless the heap is frozen.
_PROGRAM = """
import gc, sys
gc.disable()  # no automatic collection before the exit
class Node:
    def __del__(self):
        sys.stdout.write("collected\\n"); sys.stdout.flush()
node = Node()
node.self = node
del node
{call}
"""


def _run(call: str, check: bool = True) -> str:
    code = _PROGRAM.format(call=call)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=check).stdout


def test_without_it_the_interpreter_collects_cycles_at_exit():
    assert _run("") == "collected\n"


@pytest.mark.parametrize(
    "call",
    [
        "from pipelines import exit_gc; exit_gc.skip_final_gc(); exit_gc.skip_final_gc()",
        # What a Beam worker runs: the part writers' setup registers it.
        "from pipelines import transforms; transforms.WriteExampleParts('/nonexistent').setup()",
    ],
)
def test_registered_the_heap_is_frozen_at_exit(call):
    assert _run(call) == ""


@pytest.mark.parametrize(
    "module,entry",
    [
        ("pipelines.build_tfrecords", "run"),
        ("pipelines.inspect_dataset", "run"),
        ("trainer.train", "run_cli"),
        ("trainer.predict", "run"),
    ],
)
def test_every_command_registers_it(module, entry):
    # Run without its required arguments: the command exits with a usage error, through the same exit.
    out = _run(f"import importlib; sys.argv = ['{module}']; importlib.import_module('{module}').{entry}()", check=False)
    assert "collected" not in out


def test_registered_once_per_process():
    out = _run(
        "import atexit; from pipelines import exit_gc\n"
        "n = atexit._ncallbacks(); exit_gc.skip_final_gc(); exit_gc.skip_final_gc()\n"
        "print(atexit._ncallbacks() - n)"
    )
    assert out == "1\n"
