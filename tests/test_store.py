"""Content-addressed keys and atomic job directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.store import DONE, ArtifactStore, job_key


def test_key_depends_on_every_input_and_not_on_key_order():
    base = job_key("teacher", {"a": 1, "b": [1, 2]}, {"up": "k1"}, {"plugin": "1.0"})
    assert base == job_key("teacher", {"b": [1, 2], "a": 1}, {"up": "k1"}, {"plugin": "1.0"})
    assert base != job_key("student", {"a": 1, "b": [1, 2]}, {"up": "k1"}, {"plugin": "1.0"})
    assert base != job_key("teacher", {"a": 2, "b": [1, 2]}, {"up": "k1"}, {"plugin": "1.0"})
    assert base != job_key("teacher", {"a": 1, "b": [1, 2]}, {"up": "k2"}, {"plugin": "1.0"})
    assert base != job_key("teacher", {"a": 1, "b": [1, 2]}, {"up": "k1"}, {"plugin": "1.1"})


def test_completed_job_is_renamed_into_place_with_its_record(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with store.writing("teacher", "abc", {"seed": 0}) as work:
        (work / "payload.txt").write_text("done")
        assert not store.is_complete("teacher", "abc")
    assert store.is_complete("teacher", "abc")
    assert (store.path("teacher", "abc") / "payload.txt").read_text() == "done"
    assert (store.path("teacher", "abc") / DONE).is_file()
    assert [p.name for p in (tmp_path / "teacher").iterdir()] == ["abc"]


def test_failed_job_leaves_nothing_behind(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("teacher", "abc", {}) as work:
            (work / "half.npy").write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not store.is_complete("teacher", "abc")
    assert list((tmp_path / "teacher").iterdir()) == []
