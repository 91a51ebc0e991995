"""Command line of the model zoo.

    python -m trainer.models --list [--family=resnet | --models=resnet18,vgg16] [--json]
    python -m trainer.models --measure=resnet18 [--json]
    python -m trainer.models --summary=seed003_googlenet [--aux_heads]
    python -m trainer.models --plot=resnet50 --out=resnet50.png

--list prints the registry (name, family, parameters, FLOPs, default input, classes, reference)
from the counts pinned in trainer/models/specs.py: no model is built and TensorFlow is not
imported (well under a second). --measure builds one model at its default input and class count,
counts its parameters and FLOPs (TF profiler) and compares them with the pinned ones.

Exit codes: 0 done; 1 --measure found counts that differ from the pinned ones (or --plot lacks
Graphviz); 2 a bad flag, or an unknown model or family (one `error:` line naming the known ones).
Flags live in a private FlagValues, so importing this module defines no global absl flags.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from absl import flags, logging


def _define_flags() -> flags.FlagValues:
    fv = flags.FlagValues()
    flags.DEFINE_boolean(
        "list",
        False,
        "Print the registry as a table (name, family, parameters, FLOPs at the default input, input size, "
        "classes, reference), from the pinned counts: nothing is built.",
        flag_values=fv,
    )
    flags.DEFINE_string("family", None, "With --list: only this family's models.", flag_values=fv)
    flags.DEFINE_list("models", None, "With --list: only these models.", flag_values=fv)
    flags.DEFINE_boolean(
        "json", False, "With --list or --measure: print JSON (a list of rows) instead of a table.", flag_values=fv
    )
    flags.DEFINE_string(
        "measure",
        None,
        "Build this model at its default input and class count, count its parameters and FLOPs, and "
        "compare them with the pinned ones (exit 1 if they differ).",
        flag_values=fv,
    )
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


def spec_row(spec) -> dict:
    """One --list row (a JSON object) from a spec's pinned counts; None where nothing is pinned."""
    return {
        "name": spec.name,
        "family": spec.family,
        "params": spec.params,
        "trainable_params": spec.trainable_params,
        "flops": spec.flops,
        "input_shape": list(spec.default_input_shape),
        "num_classes": spec.num_classes,
        "reference": spec.reference,
    }


def format_table(rows: list[dict]) -> str:
    header = ("name", "family", "params", "GFLOPs", "input", "classes", "reference")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["name"],
                r["family"],
                "-" if r["params"] is None else f"{r['params']:,}",
                "-" if r["flops"] is None else f"{r['flops'] / 1e9:.2f}",
                "x".join(map(str, r["input_shape"])),
                str(r["num_classes"]),
                r["reference"],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _print_rows(fv, rows: list[dict]) -> None:
    print(json.dumps(rows, indent=1) if fv.json else format_table(rows))


def measure(name: str) -> tuple[dict, list[str]]:
    """Builds `name` at its default input and class count; its measured row and how it differs
    from the pinned counts (empty when they agree or nothing is pinned)."""
    import keras

    from trainer.models import get_spec
    from trainer.models.stats import count_flops, count_params

    spec = get_spec(name)
    model = _build_default(name)
    counts = count_params(model)
    row = {
        **spec_row(spec),
        "params": counts.total,
        "trainable_params": counts.trainable,
        "flops": count_flops(model),
    }
    del model
    keras.backend.clear_session()
    pinned = spec_row(spec)
    differ = [
        f"{key}: pinned {pinned[key]:,}, measured {row[key]:,}"
        for key in ("params", "trainable_params", "flops")
        if pinned[key] is not None and pinned[key] != row[key]
    ]
    return row, differ


def _build_default(name: str):
    from trainer.models import create_model, get_spec

    return create_model(name, num_classes=get_spec(name).num_classes, kernel_initializer="zeros")


def main(fv: flags.FlagValues) -> int:
    from trainer.models import get_spec, list_models

    if sum(bool(x) for x in (fv.list, fv.measure, fv.summary, fv.plot)) != 1:
        sys.stderr.write("error: pass exactly one of --list, --measure=NAME, --summary=NAME, --plot=NAME\n")
        return 2
    if fv.list:
        if fv.family and fv.models:
            sys.stderr.write("error: --family and --models select the same thing: give one of them\n")
            return 2
        names = fv.models or list_models(fv.family)
        _print_rows(fv, [spec_row(get_spec(name)) for name in names])
        return 0
    if fv.measure:
        get_spec(fv.measure)  # an unknown name fails before TensorFlow loads
        logging.info("Building %s", fv.measure)
        row, differ = measure(fv.measure)
        _print_rows(fv, [row])
        if differ:
            sys.stderr.write(
                f"error: {fv.measure} differs from its pinned counts ({'; '.join(differ)}): "
                "update trainer/models/specs.py PINNED if the builder changed on purpose\n"
            )
            return 1
        return 0
    if fv.summary:
        _build(fv, fv.summary).summary()
        return 0
    if not fv.out:
        sys.stderr.write("error: --plot needs --out=FILE.png\n")
        return 2
    missing = plot_dependencies_missing()
    if missing:
        sys.stderr.write(f"error: {missing}\n")
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
        sys.stderr.write(f"error: {e}\n")
        return 2
    if len(rest) > 1:
        sys.stderr.write(f"error: unexpected arguments: {rest[1:]}\n")
        return 2
    logging.set_verbosity(logging.INFO)
    try:
        return main(fv)
    except ValueError as e:  # unknown model or family name, impossible configuration
        sys.stderr.write(f"error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(run())
