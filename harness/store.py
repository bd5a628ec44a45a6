"""Content-addressed, atomically written job artifacts, resumable work directories and failure records.

A job's key hashes its stage, its canonical configuration, the keys of the jobs it depends on and the
versions of the plugins involved. Layout under the store root::

    <stage>/<key>/                  a finished job: its files and, written last, done.json
    <stage>/.partial-<key>/         the work directory of an unfinished job (training checkpoint, history so far)
    <stage>/.partial-<key>.lock     held (flock) by the process running the job
    <stage>/<key>.failed.json       the error of the job's last failed attempt

A job works in its partial directory, writes ``done.json`` last and renames the directory to its final
path: a directory at the final path is always complete, and a rerun skips it. A killed job leaves its
partial directory behind, and the next attempt resumes from what it holds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.atomic import write_json
from harness.errors import SdbenchError
from harness.faults import kill_point

DONE = "done.json"
PARTIAL_PREFIX = ".partial-"
LOCK_SUFFIX = ".lock"
ASIDE_PREFIX = ".old-"
"""A finished artifact being replaced is renamed to ``<ASIDE_PREFIX><name>-<pid>`` before it is removed."""
CHECKPOINT = "checkpoint.pt"
"""A job's training state in its work directory (:mod:`harness.checkpoint`), which a rerun resumes from."""


class JobBusyError(SdbenchError):
    """Another process holds the job's lock: it is running the same job right now."""


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def job_key(stage: str, config: Mapping[str, Any], upstream: Mapping[str, str] | None = None,
            versions: Mapping[str, str] | None = None) -> str:
    payload = {"stage": stage, "config": config, "upstream": upstream or {}, "versions": versions or {}}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:20]


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def partial_path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{PARTIAL_PREFIX}{key}"

    def failure_path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{key}.failed.json"

    def is_complete(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / DONE).is_file()

    def failure(self, stage: str, key: str) -> dict[str, Any] | None:
        """The record of the job's last failed attempt, if its last attempt failed."""
        path = self.failure_path(stage, key)
        return json.loads(path.read_text()) if path.is_file() else None

    def record_failure(self, stage: str, key: str, description: Mapping[str, Any], error: BaseException) -> None:
        write_json(self.failure_path(stage, key),
                   {"stage": stage, "key": key, "job": dict(description), "time": time.time(),
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": "".join(traceback.format_exception(error))})

    @contextmanager
    def writing(self, stage: str, key: str, description: Mapping[str, Any], fresh: bool = False) -> Iterator[Path]:
        """The job's work directory, locked for this process; on success it becomes ``path(stage, key)``.

        What an earlier, interrupted attempt left in the work directory is kept for the job to resume from,
        unless ``fresh``. On failure the directory stays, and the exception propagates.
        """
        final, work = self.path(stage, key), self.partial_path(stage, key)
        work.parent.mkdir(parents=True, exist_ok=True)
        lock = work.with_name(work.name + LOCK_SUFFIX)
        with _exclusive_lock(lock, f"{stage} job {key}"):
            if fresh and work.exists():
                shutil.rmtree(work)
            work.mkdir(exist_ok=True)
            started = time.time()
            yield work
            write_json(work / DONE, {"stage": stage, "key": key, "job": dict(description),
                                     "seconds": round(time.time() - started, 3), "finished": time.time()})
            kill_point("artifact-rename")
            if final.exists():
                _remove_aside(final)
            os.replace(work, final)
            self.failure_path(stage, key).unlink(missing_ok=True)
            lock.unlink(missing_ok=True)


@contextmanager
def _exclusive_lock(path: Path, what: str) -> Iterator[None]:
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusyError(f"{what} is being run by another process (lock {path} is held)") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_aside(directory: Path) -> None:
    """Remove a finished artifact that is being replaced (``--rerun all``): renamed away first, so its final
    path never holds a half-deleted directory."""
    trash = directory.with_name(f"{ASIDE_PREFIX}{directory.name}-{os.getpid()}")
    os.replace(directory, trash)
    shutil.rmtree(trash)
