"""The program's flags and input checks: one-line errors before any work (run in this process)."""

import pytest

from pipelines import build_tfrecords
from pipelines.readers import Input
from tests.pipelines.conftest import IN_PROCESS, make_image_folder, parsed_flags, run_main


@pytest.fixture
def folder(tmp_path):
    return make_image_folder(tmp_path / "in", classes=("cats", "dogs", "owls"), per_class=3)


def _fails(capsys, *argv):
    rc = run_main(build_tfrecords.main, *argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "class_names,message",
    [
        ("cats,dogs", "in the input but not in --class_names: ['owls']"),
        ("cats,dogs,owls,bats", "missing from the input: ['bats']"),
        ("cats,dogs,cats,owls", "lists ['cats'] more than once"),
    ],
)
def test_class_names_must_match_the_input(folder, tmp_path, capsys, class_names, message):
    err = _fails(capsys, f"--input_dir={folder}", f"--output_dir={tmp_path / 'out'}", f"--class_names={class_names}")
    assert message in err and not (tmp_path / "out").exists()


def test_class_names_from_a_file_set_the_label_order(folder, tmp_path):
    (tmp_path / "names.txt").write_text("# label order\nowls\ncats\n\ndogs\n")
    names = build_tfrecords.class_names_from_flag(f"@{tmp_path / 'names.txt'}")
    with parsed_flags(f"--input_dir={folder}"):
        got = build_tfrecords.read_input(names).class_names
    assert got == ["owls", "cats", "dogs"]


def test_an_empty_class_folder_is_an_error_before_work(folder, tmp_path, capsys):
    (folder / "bats").mkdir()
    (folder / "bats" / "notes.txt").write_text("no images here")
    err = _fails(capsys, f"--input_dir={folder}", f"--output_dir={tmp_path / 'out'}")
    assert "class folder(s) with no" in err and "bats/" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--keep_input_splits", "--splits=train:0.5,test:0.5"], "contradict each other"),
        (["--compression=gzip"], "needs --layout=model_garden"),
        (["--num_shards=2", "--shard_size_mb=10"], "--num_shards and --shard_size_mb"),
        (["--resize=keep", "--image_size=64"], "--resize=keep"),
        (["--class_names=@/nonexistent/names.txt"], "no such file"),
    ],
)
def test_contradictory_flags_fail_before_any_work(folder, tmp_path, capsys, flags, message):
    argv = [f"--input_dir={folder}", f"--output_dir={tmp_path / 'out'}", *flags]
    assert message in _fails(capsys, *argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_class_whose_every_image_is_bad_fails_the_job_naming_it(folder, tmp_path, capsys):
    for i, f in enumerate(sorted((folder / "owls").iterdir())):
        f.write_bytes(b"" if i == 0 else f.read_bytes()[:200])
    err = _fails(
        capsys,
        f"--input_dir={folder}",
        f"--output_dir={tmp_path / 'out'}",
        "--max_bad_fraction=0.5",
        "--image_size=16",
        *IN_PROCESS,
    )
    assert "class 'owls' has no valid image: all 3 of its inputs were rejected" in err
    assert not (tmp_path / "out" / "flowers" / "1.0.0").exists()


def test_tfds_input_keeps_its_splits_unless_splits_is_given():
    mnist = Input([], [], "tfds mnist", channels=1, own_splits=True)  # what the tfds reader says of MNIST
    with parsed_flags("--tfds_name=mnist"):
        assert build_tfrecords.options_from_flags(mnist).keep_input_splits
        assert build_tfrecords.options_from_flags(mnist).channels == 1
    with parsed_flags("--tfds_name=mnist", "--splits=train:0.9,test:0.1", "--grayscale=false"):
        opts = build_tfrecords.options_from_flags(mnist)
        assert not opts.keep_input_splits and opts.channels == 3


@pytest.mark.slow
@pytest.mark.parametrize("runner", [[], ["--runner=DirectRunner"]])
def test_the_default_runner_never_tries_to_download_prism(folder, tmp_path, monkeypatch, runner):
    """Beam's DirectRunner first tries the Prism runner (a binary it downloads; offline it falls back);
    the job's default runner options keep it from that."""
    from apache_beam.runners.portability import prism_runner

    tried = []

    def offline(self, *args, **kwargs):
        tried.append(True)
        raise RuntimeError("no prism here")

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", offline)
    argv = [f"--input_dir={folder}", f"--output_dir={tmp_path}", "--image_size=16", *IN_PROCESS, *runner]
    assert run_main(build_tfrecords.main, *argv) == 0
    assert tried == ([True] if runner else [])  # named without the job's defaults, the DirectRunner tries it
