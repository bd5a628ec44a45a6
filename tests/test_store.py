"""Content-addressed keys and atomic job directories."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.runs.store import DONE, ArtifactStore, job_key
from harness.system.locks import LockBusyError, is_held


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
    assert [p.name for p in (tmp_path / "teacher").iterdir() if p.is_dir()] == ["abc"]


def test_failed_job_keeps_its_work_for_the_next_attempt_and_no_final_directory(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("teacher", "abc", {}) as work:
            (work / "checkpoint.pt").write_bytes(b"epoch 1")
            raise RuntimeError("killed")
    assert not store.is_complete("teacher", "abc") and not store.path("teacher", "abc").exists()
    with store.writing("teacher", "abc", {}) as work:
        assert (work / "checkpoint.pt").read_bytes() == b"epoch 1"
    assert store.is_complete("teacher", "abc")
    assert [p.name for p in (tmp_path / "teacher").iterdir() if p.is_dir()] == ["abc"]


def test_fresh_attempt_discards_earlier_work(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.writing("teacher", "abc", {}) as work:
            (work / "checkpoint.pt").write_bytes(b"stale")
            raise RuntimeError("killed")
    with store.writing("teacher", "abc", {}, fresh=True) as work:
        assert list(work.iterdir()) == []


def test_a_job_being_run_elsewhere_is_not_entered_twice(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with store.writing("teacher", "abc", {}):
        with pytest.raises(LockBusyError, match="teacher job abc is being run by another process"):
            with store.writing("teacher", "abc", {}, wait=False):
                pass


def test_failure_record_holds_error_and_traceback_until_the_job_succeeds(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    try:
        raise ValueError("bad frame")
    except ValueError as exc:
        store.record_failure("teacher", "abc", {"seed": 1}, exc)
    record = store.failure("teacher", "abc")
    assert record["error"] == "ValueError: bad frame" and "raise ValueError" in record["traceback"]
    assert record["job"] == {"seed": 1}
    with store.writing("teacher", "abc", {}):
        pass
    assert store.failure("teacher", "abc") is None


def test_the_lock_file_stays_in_place_and_is_free_after_the_job(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with store.writing("teacher", "abc", {}):
        assert is_held(store.lock_path("teacher", "abc"))
    assert store.lock_path("teacher", "abc").is_file() and not is_held(store.lock_path("teacher", "abc"))


def test_a_job_complete_once_its_lock_is_held_is_not_entered_again(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with store.writing("teacher", "abc", {}) as work:
        (work / "payload.txt").write_text("first")
    record = (store.path("teacher", "abc") / DONE).read_text()
    with store.writing("teacher", "abc", {}, fresh=True) as work:
        assert work is None
    assert (store.path("teacher", "abc") / "payload.txt").read_text() == "first"
    assert (store.path("teacher", "abc") / DONE).read_text() == record
    assert not store.partial_path("teacher", "abc").exists()


def test_since_replaces_an_artifact_finished_before_it_and_keeps_one_finished_after(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    with store.writing("teacher", "abc", {}) as work:
        (work / "payload.txt").write_text("before")
    time.sleep(0.01)
    since = time.time()
    assert store.is_complete("teacher", "abc") and not store.is_complete("teacher", "abc", since)
    with store.writing("teacher", "abc", {}, since=since) as work:
        (work / "payload.txt").write_text("after")
    assert store.is_complete("teacher", "abc", since)
    with store.writing("teacher", "abc", {}, since=since) as work:
        assert work is None
    assert (store.path("teacher", "abc") / "payload.txt").read_text() == "after"
    assert [p.name for p in (tmp_path / "teacher").iterdir() if p.is_dir()] == ["abc"]  # nothing set aside is left
