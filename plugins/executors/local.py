"""The default executor: jobs one after another in this process, or in parallel with one worker per GPU.

With several visible GPUs, each worker process is pinned to one of them through ``CUDA_VISIBLE_DEVICES``
before it imports torch. On CPU (and with one GPU) jobs run in order in this process, so that training uses
every core for one job at a time. Options (``executor_options.local``): ``workers``, the number of worker
processes, one per GPU (default: the number of visible GPUs; more workers than GPUs share them round-robin).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Iterator, Mapping, Sequence

from harness.executor import Executor, Job, Outcome, Work
from harness.plugins import hookimpl
from harness.specs import ExecutorSpec


class InProcess(Executor):
    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        for job in jobs:
            yield work(job)


def _claim_gpu(free_gpus: Any, visible: int) -> None:
    """Pin this worker process to one GPU before it imports torch (nothing to pin on a machine without)."""
    worker = free_gpus.get()
    if visible:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(worker % visible)


class WorkerPerGpu(Executor):
    def __init__(self, workers: int, visible_gpus: int) -> None:
        self.workers = workers
        self.visible_gpus = visible_gpus

    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        context = multiprocessing.get_context("spawn")
        free_gpus = context.Queue()
        for worker in range(self.workers):
            free_gpus.put(worker)
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_claim_gpu,
                                 initargs=(free_gpus, self.visible_gpus)) as pool:
            futures: dict[Future, Job] = {pool.submit(work, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker fails its job, not the run
                    yield self.crashed(futures[future], exc)


def make_local(options: Mapping[str, Any]) -> Executor:
    import torch

    visible = torch.cuda.device_count()
    workers = int(options.get("workers", visible))
    return WorkerPerGpu(workers, visible) if workers > 1 else InProcess()


@hookimpl
def sdbench_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("local", "This machine: in order on CPU or one GPU, one job per GPU with several",
                         make_local)]
