"""The export is published whole or not at all: written into a temporary folder next to the run's
files, moved into place, then marked complete; predict refuses an export without its marker
(a trainer killed while exporting) with one line saying how to export again."""

import os

import pytest

from tests.conftest import run_cli
from trainer import export as export_lib

pytestmark = pytest.mark.slow  # builds and exports a (tiny) model


def predict(run_dir, tmp_path):
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8 not looked at: the export is checked first")
    return run_cli("trainer.predict", f"--run_dir={run_dir}", str(image), check=False)


def assert_refused_as_incomplete(proc):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "incomplete" in lines[0] and "python -m trainer.train" in lines[0], lines[0]


def test_predict_refuses_an_export_folder_without_its_completion_marker(tmp_path):
    """What a kill -9 leaves when it lands while the files are moved into export/ (on gs:// a
    rename is a copy and a delete per file), or an export written before the marker existed."""
    run_dir = tmp_path / "run"
    (run_dir / "export" / "variables").mkdir(parents=True)
    (run_dir / "export" / "saved_model.pb").write_bytes(b"\x08\x01")
    (run_dir / "labels.txt").write_text("daisy\nrose\ntulip\n")
    assert_refused_as_incomplete(predict(run_dir, tmp_path))


def test_predict_refuses_an_export_left_in_its_temporary_folder(tmp_path):
    """A kill -9 while the SavedModel is written: only the temporary folder exists."""
    run_dir = tmp_path / "run"
    partial = run_dir / export_lib.INCOMPLETE_DIR / "export"
    partial.mkdir(parents=True)
    (partial / "saved_model.pb").write_bytes(b"\x08\x01")
    (run_dir / "labels.txt").write_text("daisy\nrose\ntulip\n")
    assert_refused_as_incomplete(predict(run_dir, tmp_path))


@pytest.fixture(scope="module")
def tiny_model():
    from trainer.models import create_model

    return create_model("cifar_resnet20", num_classes=3, input_shape=(32, 32, 3))


PREP = export_lib.preprocessing_info(32, 3, [127.0] * 3, [64.0] * 3, ["daisy", "rose", "tulip"])


EXPORT_TINY_MODEL = """
import sys
from trainer import export as export_lib
from trainer.models import create_model
prep = export_lib.preprocessing_info(32, 3, [127.0] * 3, [64.0] * 3, ["daisy", "rose", "tulip"])
model = create_model("cifar_resnet20", num_classes=3, input_shape=(32, 32, 3))
export_lib.export(model, sys.argv[1], prep)
"""


@pytest.mark.parametrize("store", ["local", "gs"])
def test_an_export_is_marked_complete_and_leaves_no_temporary_folder(tmp_path, store, request):
    """On gs:// the export is moved file by file (copy + delete) and still ends marked complete.
    There in a process of its own: TensorFlow's GCS client reaches the emulator through a proxy
    that runs in this process's threads."""
    import subprocess
    import sys

    from storage import fs

    if store == "local":
        run_dir = str(tmp_path / "run")
        export_lib.export(request.getfixturevalue("tiny_model"), run_dir, PREP)
    else:
        run_dir = fs.join(request.getfixturevalue("gcs"), "run")
        subprocess.run([sys.executable, "-c", EXPORT_TINY_MODEL, run_dir], check=True, capture_output=True, timeout=300)
    export_dir = fs.join(run_dir, "export")
    marker = fs.read_json(fs.join(export_dir, export_lib.COMPLETE_MARKER))
    assert "saved_model.pb" in marker["files"] and fs.exists(fs.join(run_dir, "model.keras"))
    assert set(marker["files"]) == set(fs.list_files(export_dir)) - {export_lib.COMPLETE_MARKER}
    leftovers = fs.list_files(fs.join(run_dir, export_lib.INCOMPLETE_DIR), folders=True)  # "folder/" objects too
    assert not leftovers, leftovers
    assert export_lib.check_complete(run_dir) == export_dir


class Killed(Exception):
    pass


def test_an_export_that_dies_leaves_the_previous_one_complete(tiny_model, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    export_lib.export(tiny_model, str(run_dir), PREP)
    before = (run_dir / "export" / "saved_model.pb").read_bytes()

    class DiesHalfWay:
        def write_out(self, filepath, **kwargs):
            os.makedirs(filepath, exist_ok=True)
            with open(os.path.join(filepath, "saved_model.pb"), "wb") as f:
                f.write(b"half")
            raise Killed("killed while writing the SavedModel")

    monkeypatch.setattr(export_lib, "_saved_model", lambda model, prep: DiesHalfWay())
    with pytest.raises(Killed):
        export_lib.export(tiny_model, str(run_dir), PREP)
    assert (run_dir / "export" / "saved_model.pb").read_bytes() == before
    assert export_lib.check_complete(str(run_dir)) == str(run_dir / "export")
    monkeypatch.undo()
    export_lib.export(tiny_model, str(run_dir), PREP)  # the next export replaces the leftovers
    assert not (run_dir / export_lib.INCOMPLETE_DIR).exists()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--top_k=0", "--run_dir=RUN"], "--top_k=0"),
        (["--batch_size=-1", "--run_dir=RUN"], "--batch_size=-1"),
        ([], "--run_dir is required"),
    ],
)
def test_predict_bad_flags_are_one_line_usage_errors(tmp_path, flags, message):
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8")
    flags = [f.replace("RUN", str(tmp_path / "run")) for f in flags]
    proc = run_cli("trainer.predict", *flags, str(image), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert message in lines[0]
