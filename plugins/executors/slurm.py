"""SLURM through submitit: the jobs of a stage are submitted as one job array and awaited.

Options (``executor_options.slurm``): ``parameters``, passed to ``submitit.AutoExecutor.update_parameters``
(for example ``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``, ``timeout_min``; default
``timeout_min: 1440``), ``folder`` for submitit's logs (default ``<run dir>/slurm``), ``cluster``
(default: detected; ``local`` runs the jobs as local processes, for testing) and ``poll_s``, the seconds
between two looks at the jobs' states (default 10, which spares the scheduler; 1 for ``cluster: local``). The run directory and
``$SDBENCH_HOME`` must be on a file system the nodes share. Needs ``sdbench[slurm]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from harness.api import Executor, ExecutorSpec, Job, Outcome, Work, hookimpl, require_extra


class SlurmExecutor(Executor):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        import submitit

        folder = self.options.get("folder") or Path(work.out_dir) / "slurm"
        executor = submitit.AutoExecutor(folder=folder, cluster=self.options.get("cluster"))
        executor.update_parameters(**({"timeout_min": 1440} | dict(self.options.get("parameters", {}))))
        handles = executor.map_array(work, list(jobs))
        by_id = {handle.job_id: job for handle, job in zip(handles, jobs)}
        poll_s = self.options.get("poll_s", 1 if self.options.get("cluster") == "local" else 10)
        for handle in submitit.helpers.as_completed(handles, poll_frequency=poll_s):
            try:
                yield handle.result()
            except Exception as exc:  # noqa: BLE001 - a dead worker fails its job, not the run
                yield self.crashed(by_id[handle.job_id], exc)


def make_slurm(options: Mapping[str, Any]) -> Executor:
    require_extra("slurm", "submitit", "slurm")
    return SlurmExecutor(options)


@hookimpl
def sdbench_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("slurm", "SLURM job arrays through submitit (cluster 'local' for testing)", make_slurm)]
