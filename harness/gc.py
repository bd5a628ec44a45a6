"""``bench gc``: free the disk space of a run directory, and of the frame store, that no result needs any more.

Removed from a run directory: training checkpoints of finished jobs (their histories, predictions and
metrics stay), work directories and lock files of jobs that have finished since, directories set aside while
an artifact was replaced, and temporary files of writes that were killed. The work directories of
unfinished jobs hold the checkpoints a rerun resumes from; they are removed only on request. Removed from the
frame store (``$SDBENCH_HOME/frames``): temporary files of killed writes, one video's frames each.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.store import ASIDE_PREFIX, CHECKPOINT, DONE, LOCK_SUFFIX, PARTIAL_PREFIX

_ATOMIC_TEMP = re.compile(r"^\..+\.[a-z0-9_]+\.tmp$")


@dataclass(frozen=True)
class Garbage:
    path: Path
    bytes: int
    why: str


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def find_garbage(run_dir: Path, unfinished: bool = False) -> list[Garbage]:
    """What :func:`collect` would remove from ``run_dir``, with sizes and reasons."""
    found: list[Garbage] = []

    def add(path: Path, why: str) -> None:
        found.append(Garbage(path, _size(path), why))

    jobs = Path(run_dir) / "jobs"
    for stage in sorted(p for p in jobs.iterdir() if p.is_dir()) if jobs.is_dir() else ():
        for entry in sorted(stage.iterdir()):
            name = entry.name
            if entry.is_dir() and (entry / DONE).is_file():
                if (entry / CHECKPOINT).is_file():
                    add(entry / CHECKPOINT, "training checkpoint of a finished job")
            elif name.startswith(PARTIAL_PREFIX) and name.endswith(LOCK_SUFFIX):
                if not (stage / name[:-len(LOCK_SUFFIX)]).exists():
                    add(entry, "lock file of a job that is not running")
            elif name.startswith(PARTIAL_PREFIX) and entry.is_dir():
                if (stage / name[len(PARTIAL_PREFIX):] / DONE).is_file():
                    add(entry, "work directory of a job that has finished since")
                elif unfinished:
                    add(entry, "work directory of an unfinished job (a rerun restarts it from its first epoch)")
            elif name.startswith((ASIDE_PREFIX, ".tmp-")) and entry.is_dir():
                add(entry, "left over from an interrupted write")
    for path in sorted(jobs.rglob(".*.tmp")) if jobs.is_dir() else ():
        if path.is_file() and _ATOMIC_TEMP.match(path.name):
            add(path, "temporary file of a killed write")
    return found


STALE_TEMP_S = 600.0
"""A frame-store temporary file untouched this long belongs to a killed write: a live one is written in
seconds, once its video is decoded. Younger ones may be another process building the same store."""


def find_frame_store_garbage(home: Path, older_than_s: float = STALE_TEMP_S) -> list[Garbage]:
    """Temporary files of killed frame-store writes under ``home/frames``, untouched for ``older_than_s``."""
    frames = Path(home) / "frames"
    if not frames.is_dir():
        return []
    cutoff = time.time() - older_than_s
    stale = [path for path in sorted(frames.rglob(".*.tmp"))
             if path.is_file() and _ATOMIC_TEMP.match(path.name) and path.stat().st_mtime <= cutoff]
    return [Garbage(path, path.stat().st_size, "temporary file of a killed frame-store write") for path in stale]


def collect(garbage: list[Garbage]) -> int:
    """Remove everything in ``garbage``; return the bytes freed."""
    freed = 0
    for item in garbage:
        if item.path.is_dir():
            shutil.rmtree(item.path)
        else:
            item.path.unlink(missing_ok=True)
        freed += item.bytes
    return freed
