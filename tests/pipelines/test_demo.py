"""The demo's own lines: stage commands as a user types them, and a closing summary of a few lines."""

import sys

import pytest

from pipelines import demo


def test_a_stage_shows_the_command_a_user_would_type():
    assert demo.command_line([sys.executable, "-m", "crawler.crawl", "--classes=all"]) == (
        "python -m crawler.crawl --classes=all"
    )


def test_the_closing_summary_is_six_lines_with_every_path_in_the_summary_file():
    classes = [f"class_{i:02d}" for i in range(20)]
    summary = {
        "test_top1": 0.9512,
        "test_top5": 0.999,
        "per_class_accuracy": {c: (i + 1) / 20 for i, c in enumerate(classes)},
        "seconds": {"crawl": 41.2, "tfrecords": 30.4, "train": 600.9, "total": 680.0},
        "paths": {"raw": "ws/raw", "tfrecords": "ws/tfrecords/flowers/1.0.0", "run": "ws/runs/demo"},
    }
    lines = demo.summary_lines(summary, "ws/demo_summary.json")
    assert len(lines) == 6
    assert lines[0] == "=== demo finished in 680s (crawl 41s, tfrecords 30s, train 601s)"
    assert lines[1] == "test accuracy: 0.9512 (top-5 0.9990)"
    assert lines[2].startswith("per-class accuracy, worst first: class_00 0.05, class_01 0.10")
    assert "ws/demo_summary.json" in lines[-1] and all(p in "\n".join(lines) for p in summary["paths"].values())


def test_a_second_demo_in_a_workspace_in_use_is_refused_and_deletes_nothing(tmp_path):
    from storage import lock

    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    (run_dir / "model.keras").write_bytes(b"the first demo's model")
    # the first demo, alive (this process), holds the workspace
    with lock.hold(str(tmp_path), "demo"), pytest.raises(lock.LockHeld, match="demo"):
        demo.run_demo(demo.DemoConfig(workspace=str(tmp_path)))
    assert (run_dir / "model.keras").read_bytes() == b"the first demo's model"
