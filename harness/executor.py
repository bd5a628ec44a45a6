"""Executors: how a batch of independent training jobs is run (in this process, per GPU, on Ray, on SLURM).

The runner hands an executor a list of :class:`Job` objects and a :class:`Work` callable; the executor calls
``work(job)`` for every job, wherever it likes, and yields one :class:`Outcome` per job as they finish.
Both are small picklable values: a worker process rebuilds the runner from the run's configuration and
finds its inputs (frames, teacher histories, soft labels) in the shared run directory. ``work(job)``
never raises for a failure of the job itself: it records the error and returns a failed outcome. A job that
another process is running (another ``bench run`` on the same directory) comes back ``busy`` at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence



@dataclass(frozen=True)
class Job:
    """One teacher or student training run, by the names a worker needs to rebuild it."""

    stage: str
    key: str
    dataset: str
    split: str
    backbone: str
    seed: int
    teaching: str | None = None
    """Students only: the key of the soft-labels artifact they train on."""
    label: str = ""
    since: float | None = None
    """Under ``rerun: all``, the run's start: the job counts as complete only if it finished at or after it."""
    wait: bool = False
    """Wait for the job's lock when another process holds it (the runner's retry of a busy job), instead of
    returning a busy outcome at once."""

    def describe(self) -> str:
        label = f" ({self.label})" if self.label else ""
        return f"{self.stage} {self.dataset}/{self.split}/{self.backbone} seed {self.seed}{label}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    ok: bool
    error: str | None = None
    trained: bool = False
    """False when the job was already complete (or its failure was kept) and nothing ran."""
    busy: bool = False
    """Another process held the job's lock (and ``job.wait`` was not set): nothing ran, and the runner retries
    the job, waiting for the lock, once the other jobs of its stage have run."""


@dataclass(frozen=True)
class Work:
    """``work(job)``: run ``job`` of the run at ``out_dir`` with configuration ``config`` (``RunConfig.to_dict``).

    Within one process, the runner for a run directory is built once and reused.
    """

    config: Mapping[str, Any]
    out_dir: str
    quiet: bool = False

    def __call__(self, job: Job) -> Outcome:
        from harness.runner import runner_for

        return runner_for(self).execute(job)


class Executor(ABC):
    """Runs independent jobs. Subclasses are registered by executor plugins (see ``plugins/executors``)."""

    @abstractmethod
    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        """Call ``work(job)`` for every job and yield the outcomes as jobs finish, in any order."""

    def crashed(self, job: Job, error: BaseException) -> Outcome:
        """The outcome of a job whose worker died or could not start (the job could not record it)."""
        return Outcome(job, ok=False, error=f"worker failed: {type(error).__name__}: {error}", trained=True)
