"""Content-addressed, atomically written job artifacts, resumable work directories and failure records.

A job's key hashes its stage, its canonical configuration, the keys of the jobs it depends on and the
versions of the plugins involved. Layout under the store root::

    <stage>/<key>/                  a finished job: its files and, written last, done.json
    <stage>/.partial-<key>/         the work directory of an unfinished job (training checkpoint, history so far)
    <stage>/.partial-<key>.lock     held (:mod:`harness.system.locks`) by the process running the job; it stays
                                    on disk after the job (``bench gc`` removes it)
    <stage>/<key>.failed.json       the error of the job's last failed attempt

A job works in its partial directory, writes ``done.json`` last and renames the directory to its final
path: a directory at the final path is always complete, and a rerun skips it. A killed job leaves its
partial directory behind, and the next attempt resumes from what it holds. Completion is checked again
once the job's lock is held, so a job that another process finished while this one waited is not redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.errors import SdbenchError
from harness.system.atomic import write_json
from harness.system.faults import kill_point
from harness.system.locks import fsync_directory, held

DONE = "done.json"
PARTIAL_PREFIX = ".partial-"
LOCK_SUFFIX = ".lock"
ASIDE_PREFIX = ".old-"
"""A finished artifact being replaced is renamed to ``<ASIDE_PREFIX><name>-<pid>`` before it is removed."""
CHECKPOINT = "checkpoint.pt"
"""A job's training state in its work directory (:mod:`harness.train.checkpoint`), which a rerun resumes from."""


class FailedMeanwhile(SdbenchError):
    """The job failed in another process while this one waited for its lock; the message is its error."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = dict(record)
        super().__init__(record["error"])


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

    def lock_path(self, stage: str, key: str) -> Path:
        return self.root / stage / f"{PARTIAL_PREFIX}{key}{LOCK_SUFFIX}"

    def is_complete(self, stage: str, key: str, since: float | None = None) -> bool:
        """Whether the job has finished; with ``since`` (a :func:`time.time`), whether it finished at or after it."""
        done = self.path(stage, key) / DONE
        if since is None or not done.is_file():
            return done.is_file()
        return json.loads(done.read_text()).get("finished", 0.0) >= since

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
    def writing(self, stage: str, key: str, description: Mapping[str, Any], fresh: bool = False,
                wait: bool = True, since: float | None = None,
                failed_since: float | None = None) -> Iterator[Path | None]:
        """The job's work directory, locked for this process; on success it becomes ``path(stage, key)``.

        Yields None instead, and changes nothing, when the job is complete (at or after ``since``, see
        :meth:`is_complete`) once the lock is held: another process finished it while this one waited. A
        complete job older than ``since`` is replaced. What an earlier, interrupted attempt left in the work
        directory is kept for the job to resume from, unless ``fresh``. On failure the directory stays, and
        the exception propagates. Without ``wait``, :class:`~harness.system.locks.LockBusyError` is raised at once
        when another process holds the job's lock. With ``failed_since``, a job whose last attempt failed at or
        after it raises :class:`FailedMeanwhile` once the lock is held (another process just tried it).
        """
        final, work = self.path(stage, key), self.partial_path(stage, key)
        work.parent.mkdir(parents=True, exist_ok=True)
        with held(self.lock_path(stage, key), f"{stage} job {key}", wait=wait):
            if self.is_complete(stage, key, since):
                yield None
                return
            failure = self.failure(stage, key) if failed_since is not None else None
            if failure is not None and failure.get("time", 0.0) >= failed_since:
                raise FailedMeanwhile(failure)
            if fresh and work.exists():
                shutil.rmtree(work)
            work.mkdir(exist_ok=True)
            started = time.time()
            yield work
            write_json(work / DONE, {"stage": stage, "key": key, "job": dict(description),
                                     "seconds": round(time.time() - started, 3), "finished": time.time()})
            fsync_directory(work)
            kill_point("artifact-rename")
            if final.exists():
                _remove_aside(final)
            os.replace(work, final)
            self.failure_path(stage, key).unlink(missing_ok=True)
            fsync_directory(final.parent)


def _remove_aside(directory: Path) -> None:
    """Remove a finished artifact that is being replaced (``--rerun all``): renamed away first, so its final
    path never holds a half-deleted directory."""
    trash = directory.with_name(f"{ASIDE_PREFIX}{directory.name}-{os.getpid()}")
    os.replace(directory, trash)
    shutil.rmtree(trash)
