"""``bench gc``: free the disk space of a run directory, and of the frame store, that no result needs any more.

Removed from a run directory: training checkpoints of finished jobs (their histories, predictions, metrics
and students' model files stay), work directories and lock files of jobs that have finished since,
directories set aside while an artifact was replaced, and temporary files of writes that were killed. The
work directories of unfinished jobs hold the checkpoints a rerun resumes from; they are removed only on
request. Removed from the frame store (``$SDBENCH_HOME/frames``): temporary files of killed writes, one
video's frames each.

Another ``bench run`` may be at work in the same directory: a job whose lock is held (its work directory,
checkpoint, temporary files and lock file) is never touched, a job's things are removed only while gc holds
its lock, and temporary files and set-aside directories count as left over only once untouched for
:data:`STALE_TEMP_S`.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from harness.data.frames import lock_path
from harness.runs.store import ASIDE_PREFIX, CHECKPOINT, DONE, LOCK_SUFFIX, PARTIAL_PREFIX
from harness.system.locks import LockBusyError, held, is_held

_ATOMIC_TEMP = re.compile(r"^\..+\.[a-z0-9_]+\.tmp$")

STALE_TEMP_S = 600.0
"""A temporary file (or a directory set aside) untouched this long belongs to a killed write: a live one is
written in seconds. Younger ones may be another process writing the same run directory or frame store."""


@dataclass(frozen=True)
class Garbage:
    path: Path
    bytes: int
    why: str
    lock: Path | None = None
    """The job lock held while the item is removed; an item whose lock another process holds by then is kept."""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _running(lock: Path) -> bool:
    return lock.exists() and is_held(lock)


def _stale(path: Path, cutoff: float) -> bool:
    return path.stat().st_mtime <= cutoff


def find_garbage(run_dir: Path, unfinished: bool = False, older_than_s: float = STALE_TEMP_S) -> list[Garbage]:
    """What :func:`collect` would remove from ``run_dir``, with sizes and reasons; temporary files and
    directories count once untouched for ``older_than_s``."""
    found: list[Garbage] = []

    def add(path: Path, why: str, lock: Path | None = None) -> None:
        found.append(Garbage(path, _size(path), why, lock))

    cutoff = time.time() - older_than_s
    jobs = Path(run_dir) / "jobs"
    running: list[Path] = []
    for stage in sorted(p for p in jobs.iterdir() if p.is_dir()) if jobs.is_dir() else ():
        keys: dict[str, list[Path]] = {}  # every job with a work directory, lock file or set-aside directory
        for entry in sorted(stage.iterdir()):
            name = entry.name
            if name.startswith(PARTIAL_PREFIX):
                keys.setdefault(name[len(PARTIAL_PREFIX):].removesuffix(LOCK_SUFFIX), [])
            elif name.startswith(ASIDE_PREFIX) and entry.is_dir():  # <ASIDE_PREFIX><key>-<pid>
                keys.setdefault(name[len(ASIDE_PREFIX):].rpartition("-")[0], []).append(entry)
            elif name.startswith(".tmp-") and entry.is_dir():
                if _stale(entry, cutoff):
                    add(entry, "left over from an interrupted write")
            elif entry.is_dir() and (entry / CHECKPOINT).is_file() and (entry / DONE).is_file():
                add(entry / CHECKPOINT, "training checkpoint of a finished job")
        for key, asides in sorted(keys.items()):
            work, lock = stage / f"{PARTIAL_PREFIX}{key}", stage / f"{PARTIAL_PREFIX}{key}{LOCK_SUFFIX}"
            if _running(lock):
                running.append(work)
                continue
            for aside in asides:
                if _stale(aside, cutoff):
                    add(aside, "finished artifact set aside by an interrupted replacement", lock)
            if work.is_dir():
                if (stage / key / DONE).is_file():
                    add(work, "work directory of a job that has finished since", lock)
                elif unfinished:
                    add(work, "work directory of an unfinished job (a rerun restarts it from its first epoch)", lock)
                else:
                    continue
            if lock.exists():
                add(lock, "lock file of a job that is not running", lock)
    kept_or_listed = running + [item.path for item in found]
    for path in sorted(jobs.rglob(".*.tmp")) if jobs.is_dir() else ():
        if (path.is_file() and _ATOMIC_TEMP.match(path.name) and _stale(path, cutoff)
                and not any(path.is_relative_to(directory) for directory in kept_or_listed)):
            add(path, "temporary file of a killed write")
    return found


def find_frame_store_garbage(home: Path, older_than_s: float = STALE_TEMP_S) -> list[Garbage]:
    """Temporary files of killed frame-store writes under ``home/frames``, untouched for ``older_than_s`` and
    with their video's lock free. A video is decoded into its temporary file under that lock, for as long as
    decoding takes (minutes for a long video), and :func:`collect` removes the file while holding it."""
    frames = Path(home) / "frames"
    if not frames.is_dir():
        return []
    cutoff = time.time() - older_than_s
    found = []
    for path in sorted(frames.rglob(".*.tmp")):
        if path.is_file() and _ATOMIC_TEMP.match(path.name) and _stale(path, cutoff):
            lock = lock_path(path.with_name(path.name[1:].removesuffix(".tmp").rsplit(".", 1)[0]))  # .<video>.npy
            if not _running(lock):
                found.append(Garbage(path, path.stat().st_size, "temporary file of a killed frame-store write", lock))
    return found


def collect(garbage: list[Garbage]) -> list[Garbage]:
    """Remove everything in ``garbage``, each item while holding its job's lock; return what was removed: not
    the items of a job that another process has started since, nor those already gone."""
    removed = []
    for item in garbage:
        try:
            with held(item.lock, str(item.lock), wait=False) if item.lock else nullcontext():
                if _remove(item.path):
                    removed.append(item)
        except LockBusyError:
            continue
    return removed


def _remove(path: Path) -> bool:
    if path.is_dir():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
