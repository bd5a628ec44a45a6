"""Inter-process locks: held, waited for, never unlinked, and a marker lock where flock is refused."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
from pathlib import Path

import filelock
import pytest

from harness.system import locks
from harness.system.locks import LockBusyError, held, is_held, lock_kind


def _hold(path: str, ready, release) -> None:
    with held(Path(path), "test job"):
        ready.set()
        release.wait(30)


@pytest.fixture
def other_process(tmp_path: Path):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    path = tmp_path / "job.lock"
    process = context.Process(target=_hold, args=(str(path), ready, release))
    process.start()
    assert ready.wait(30)
    yield path, release
    release.set()
    process.join(30)


def test_a_lock_held_by_another_process_is_busy_and_named(other_process) -> None:
    path, _ = other_process
    assert is_held(path)
    with pytest.raises(LockBusyError, match=r"test job is being run by another process \(lock .*job.lock"):
        with held(path, "test job", wait=False):
            pass


def test_a_released_lock_stays_on_disk_and_is_free(other_process) -> None:
    path, release = other_process
    release.set()
    with held(path, "test job"):
        assert path.exists()
    assert path.exists() and not is_held(path)


def test_where_flock_is_refused_a_marker_lock_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(locks, "_KINDS", {})
    assert lock_kind(tmp_path) is filelock.SoftFileLock
    with held(tmp_path / "job.lock", "test job"):
        with pytest.raises(LockBusyError):
            with held(tmp_path / "job.lock", "test job", wait=False):
                pass
    assert not is_held(tmp_path / "job.lock")
