"""Ray: every job is a Ray task with one GPU (when the cluster has GPUs) on an existing or a local cluster.

Options (``executor_options.ray``): ``address`` (an existing cluster, e.g. ``auto``; default: start a local
instance), ``gpus_per_job`` (default: 1 when the cluster has GPUs, else 0), ``cpus_per_job`` (default 1),
and ``init`` (further keyword arguments for ``ray.init``, e.g. ``num_cpus``). Needs ``sdbench[ray]``.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from harness.api import Executor, ExecutorSpec, Job, Outcome, Work, hookimpl, require_extra


def _call(work: Work, job: Job) -> Outcome:
    return work(job)


def task_options(gpus: float, cpus: float) -> dict[str, Any]:
    """The ``ray.remote`` options of a job's task.

    A task with GPUs gets a fresh worker process (``max_calls=1``): a reused worker keeps the GPU its CUDA
    context was made on, whatever Ray assigns to its next task, and the memory PyTorch cached there. Ray
    takes ``max_calls`` in ``ray.remote`` only (``.options()`` refuses it).
    """
    options: dict[str, Any] = {"num_gpus": gpus, "num_cpus": cpus, "max_retries": 0}
    if gpus > 0:
        options["max_calls"] = 1
    return options


class RayExecutor(Executor):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.options.get("address"), include_dashboard=False,
                     **dict(self.options.get("init", {})))
        gpus = self.options.get("gpus_per_job", 1 if ray.cluster_resources().get("GPU", 0) else 0)
        task = ray.remote(**task_options(gpus, self.options.get("cpus_per_job", 1)))(_call)
        pending = {task.remote(work, job): job for job in jobs}
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready)
            try:
                yield ray.get(ready)
            except Exception as exc:  # noqa: BLE001 - a dead worker fails its job, not the run
                yield self.crashed(job, exc)


def make_ray(options: Mapping[str, Any]) -> Executor:
    require_extra("ray", "ray", "ray")
    return RayExecutor(options)


@hookimpl
def sdbench_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("ray", "Ray tasks with GPU resources, on a local instance or an existing cluster",
                         make_ray)]
