"""Executors: how a batch of independent training jobs is run (in this process, per GPU, on Ray, on SLURM).

The scheduler hands an executor a list of :class:`~harness.runs.plan.Job` objects and a :class:`Work`
callable; the executor calls ``work(job)`` for every job, wherever it likes, and yields one
:class:`~harness.runs.plan.Outcome` per job as they finish. Both are small picklable values: a worker
process rebuilds the job context from the run's configuration (:func:`harness.runs.context.context_for`)
and finds its inputs (frames, teacher histories, soft labels) in the shared run directory. ``work(job)``
never raises for a failure of the job itself: it records the error and returns a failed outcome. A job that
another process is running (another ``bench run`` on the same directory) comes back ``busy`` at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from harness.runs.plan import Job, Outcome


@dataclass(frozen=True)
class Work:
    """``work(job)``: run ``job`` of the run at ``out_dir`` with configuration ``config`` (``RunConfig.to_dict``).

    Within one process, the job context for a run directory is built once and reused.
    """

    config: Mapping[str, Any]
    out_dir: str
    quiet: bool = False
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """The fingerprints of the jobs' datasets, as the run's process computed them (a worker reuses them)."""

    def __call__(self, job: Job) -> Outcome:
        # Imported here, where a job runs: executor plugins import this module, and listing them imports no torch.
        from harness.runs.context import context_for
        from harness.runs.jobs import execute

        return execute(context_for(self.config, self.out_dir, self.quiet, self.fingerprints), job)


class Executor(ABC):
    """Runs independent jobs. Subclasses are registered by executor plugins (see ``plugins/executors``)."""

    @abstractmethod
    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        """Call ``work(job)`` for every job and yield the outcomes as jobs finish, in any order."""

    def crashed(self, job: Job, error: BaseException) -> Outcome:
        """The outcome of a job whose worker died or could not start (the job could not record it)."""
        return Outcome(job, ok=False, error=f"worker failed: {type(error).__name__}: {error}", trained=True)
