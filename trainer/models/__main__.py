"""Command line of the model zoo.

    python -m trainer.models --list [--models=resnet18,vgg16] [--noflops]
    python -m trainer.models --summary=seed003_googlenet [--aux_heads]
    python -m trainer.models --plot=resnet50 --out=resnet50.png

Flags live in a private FlagValues, so importing this module defines no global absl flags.
"""

from __future__ import annotations

import os
import shutil
import sys

from absl import flags, logging


def _define_flags() -> flags.FlagValues:
    fv = flags.FlagValues()
    flags.DEFINE_boolean(
        "list",
        False,
        "Print the registry as a table (name, family, parameters, FLOPs at the default input, input size, reference).",
        flag_values=fv,
    )
    flags.DEFINE_list("models", None, "With --list: only these models.", flag_values=fv)
    flags.DEFINE_boolean("flops", True, "With --list: measure FLOPs (TF profiler; slower).", flag_values=fv)
    flags.DEFINE_string("summary", None, "Print model.summary() of this model.", flag_values=fv)
    flags.DEFINE_string("plot", None, "Draw this model's architecture (needs pydot + Graphviz).", flag_values=fv)
    flags.DEFINE_string("out", None, "With --plot: the image file to write.", flag_values=fv)
    flags.DEFINE_integer("num_classes", None, "Classes (default: the model's reference count).", flag_values=fv)
    flags.DEFINE_boolean("aux_heads", False, "Build GoogLeNet with its auxiliary heads.", flag_values=fv)
    return fv


def plot_dependencies_missing() -> str | None:
    """Why `keras.utils.plot_model` cannot run here, or None."""
    try:
        import pydot  # noqa: F401
    except ImportError:
        return (
            "--plot needs the Python package 'pydot' (pip install pydot) and the Graphviz "
            "system package that provides `dot` (apt-get install graphviz)."
        )
    if shutil.which("dot") is None:
        return (
            "--plot needs Graphviz: the `dot` program is missing; install the system "
            "package 'graphviz' (apt-get install graphviz)."
        )
    return None


def _build(fv, name):
    from trainer.models import create_model, get_spec

    spec = get_spec(name)
    return create_model(name, num_classes=fv.num_classes or spec.num_classes, aux_heads=fv.aux_heads)


def main(fv: flags.FlagValues) -> int:
    from trainer.models import list_models
    from trainer.models.stats import describe, format_table

    if sum(bool(x) for x in (fv.list, fv.summary, fv.plot)) != 1:
        sys.stderr.write("Pass exactly one of --list, --summary=NAME, --plot=NAME.\n")
        return 2
    if fv.list:
        names = fv.models or list_models()
        rows = []
        for name in names:
            logging.info("Measuring %s", name)
            rows.append(describe(name, with_flops=fv.flops))
        print(format_table(rows))
        return 0
    if fv.summary:
        _build(fv, fv.summary).summary()
        return 0
    if not fv.out:
        sys.stderr.write("--plot needs --out=FILE.png\n")
        return 2
    missing = plot_dependencies_missing()
    if missing:
        sys.stderr.write(missing + "\n")
        return 1
    import tempfile

    import keras

    from storage import StorageError, fs

    try:
        fs.preflight(fs.dirname(fv.out) or ".", "--out", write=True)
    except StorageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    with tempfile.TemporaryDirectory() as tmp:  # pydot writes a local file; it is copied to --out (any storage)
        local = os.path.join(tmp, os.path.basename(fv.out))
        keras.utils.plot_model(_build(fv, fv.plot), to_file=local, show_shapes=True)
        fs.copy(local, fv.out)
    logging.info("Wrote %s", fv.out)
    return 0


def run(argv=None) -> int:
    """Entry point (`flower-models`); parses `argv` (default sys.argv) and returns the exit code."""
    argv = list(sys.argv if argv is None else argv)
    fv = _define_flags()
    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(__doc__)
        print(fv.get_help())
        return 0
    try:
        rest = fv(argv)
    except flags.Error as e:
        sys.stderr.write(f"{e}\n")
        return 2
    if len(rest) > 1:
        sys.stderr.write(f"Unexpected arguments: {rest[1:]}\n")
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        return main(fv)
    except ValueError as e:  # unknown model name, impossible configuration
        sys.stderr.write(f"{e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(run())
