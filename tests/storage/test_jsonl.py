"""JSON Lines appended on a disk (a line at a time) and on object stores (whole segments, merged
at close): the same lines read back, and what a kill leaves is read complete and merged later."""

from __future__ import annotations

import pytest

from storage import fs, jsonl


@pytest.fixture(params=["local", "gs"])
def store(request, tmp_path):
    """Appends are the same code on every object store (segments through storage.fs): local and gs:// here."""
    return str(tmp_path / "store") if request.param == "local" else request.getfixturevalue("gcs")


def test_appended_lines_read_back_on_every_store(store):
    path = fs.join(store, "manifest.jsonl")
    jsonl.write(path, [{"i": 0}])
    log = jsonl.Appender(path, flush_lines=2, flush_seconds=3600)
    for i in range(1, 6):
        log.write({"i": i, "name": "véronique"})
    log.flush()
    # before the merge: everything written so far reads back, in order
    assert [d["i"] for d in jsonl.read_all(path)] == [0, 1, 2, 3, 4, 5]
    log.write({"i": 6})
    log.close()
    assert [d["i"] for d in jsonl.read_all(path)] == list(range(7))
    assert fs.read_text(path).splitlines()[1] == '{"i": 1, "name": "véronique"}'
    assert fs.list_files(store) == ["manifest.jsonl"]  # segments merged and deleted


def test_object_store_appends_are_segments_and_a_kill_loses_only_the_unflushed(gcs):
    store = gcs
    path = fs.join(store, "rejected.jsonl")
    log = jsonl.Appender(path, flush_lines=3, flush_seconds=3600)
    for i in range(7):
        log.write({"i": i})
    # killed here (never closed): two segments of three lines were written, the 7th line was not
    assert fs.list_files(store) == [".rejected.jsonl.parts/" + n for n in fs.listdir(jsonl.segments_dir(path))]
    assert len(fs.list_files(store)) == 2 and not fs.exists(path)
    assert jsonl.exists(path) and [d["i"] for d in jsonl.read_all(path)] == [0, 1, 2, 3, 4, 5]
    again = jsonl.Appender(path)  # the next run merges first
    assert fs.list_files(store) == ["rejected.jsonl"]
    again.write({"i": 6})
    again.close()
    assert [d["i"] for d in jsonl.read_all(path)] == list(range(7))


def test_a_merge_killed_before_deleting_its_segments_reads_each_line_once(store):
    path = fs.join(store, "m.jsonl")
    log = jsonl.Appender(path, flush_lines=1)
    if fs.is_local(path):  # a disk appends in place: make the segments a killed merge would leave
        fs.write_text(fs.join(jsonl.segments_dir(path), "0-0-000000.jsonl"), '{"i": 1}\n')
    log.write({"i": 1})
    log.flush()
    fs.write_text(path, '{"i": 1}\n')  # the merge wrote the file, then was killed
    assert [d["i"] for d in jsonl.read_all(path)] == [1]


def test_a_torn_last_line_is_skipped_and_cut_off_by_the_next_appender(tmp_path):
    path = str(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"i": 0}\n{"i": 1')  # killed mid-line
    assert jsonl.read_all(path) == [{"i": 0}]
    log = jsonl.Appender(path)
    log.write({"i": 2})
    log.close()
    assert (tmp_path / "m.jsonl").read_text() == '{"i": 0}\n{"i": 2}\n'
    (tmp_path / "m.jsonl").write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match=r"m.jsonl:2: not valid JSON"):
        jsonl.read_all(path)
