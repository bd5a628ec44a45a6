"""The default executor: jobs one after another in this process, or in parallel with one worker per GPU.

Where the jobs run follows the run's ``device`` (which the runner adds to the options):

- ``cpu``: in this process, one job at a time, so that training uses every core for one job;
- ``cuda:N``: in this process, on that GPU;
- ``auto`` or ``cuda``: with several visible GPUs, one worker process per GPU, each pinned to its GPU
  through ``CUDA_VISIBLE_DEVICES`` before it imports torch (an entry of this process's own mask, so that
  under ``CUDA_VISIBLE_DEVICES=2,3`` the workers get GPUs 2 and 3); with one GPU or none, in this process.

Options (``executor_options.local``): ``workers``, the number of worker processes (default: one per visible
GPU; more workers than GPUs share them round-robin; on the CPU, that many CPU workers; not with ``cuda:N``).
A worker that dies fails its own job only (:class:`WorkerPool`).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Generator, Iterator, Mapping, Sequence

from harness.api import ConfigError, Executor, ExecutorSpec, Job, Outcome, Work, hookimpl


class InProcess(Executor):
    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        for job in jobs:
            yield work(job)


def visible_gpus(mask: str | None, count: int) -> list[str]:
    """This process's ``count`` GPUs as ``CUDA_VISIBLE_DEVICES`` entries for its children: the first ``count``
    entries of its own ``mask`` (indices or ``GPU-``/``MIG-`` UUIDs, as written), or 0 to count - 1 without one.

    CUDA ignores the entries after an invalid one, so torch's ``count`` says how many of them are real.
    """
    if mask is None:
        return [str(i) for i in range(count)]
    return [entry.strip() for entry in mask.split(",")][:count]


def worker_masks(device: str, gpus: Sequence[str], workers: int | None) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of each worker process for a run on ``device`` (None: inherited), worker i
    on ``gpus[i % len(gpus)]``; an empty list runs the jobs in this process. ``workers``: the option, if set."""
    kind, _, index = device.partition(":")
    if kind == "cuda" and index:
        if workers is not None and workers > 1:
            raise ConfigError(f"executor_options.local.workers: {workers} needs device auto or cuda (one GPU per "
                              f"worker); device {device} runs its jobs in this process, on that GPU")
        return []
    if kind == "cpu" or not gpus:
        count = workers or 1
        return [None] * count if count > 1 else []
    count = workers or len(gpus)
    return [gpus[i % len(gpus)] for i in range(count)] if count > 1 else []


def _claim_gpu(free_masks: Any) -> None:
    """Pin this worker process to its GPU before it imports torch (None: keep the inherited mask)."""
    mask = free_masks.get()
    if mask is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = mask


def _announced(work: Work, job: Job, marker: str) -> Outcome:
    """``work(job)`` in a worker, after creating ``marker``: a file, so the parent learns that the job started
    even when the worker dies at once."""
    Path(marker).touch()
    return work(job)


Round = Generator[Outcome, None, tuple[BrokenProcessPool | None, list[Job], list[Job]]]


class WorkerPool(Executor):
    """One worker process per entry of ``masks`` (its ``CUDA_VISIBLE_DEVICES``; None: inherited).

    A worker that dies (killed, out of memory, a crash in native code) breaks the process pool: the pool
    kills the other workers and fails every job not finished, without saying which one killed it. Workers
    mark each job as they start it, so after a break the jobs that had not started run again on a fresh
    pool, and those that had (the culprit and the jobs killed with it, at most one per worker) are suspects:
    each runs again alone on a pool of one worker, where a death can only be its own, and then counts as
    crashed. A pool that breaks before any of its jobs starts (its workers cannot start) fails them all.
    """

    def __init__(self, masks: Sequence[str | None]) -> None:
        self.masks = list(masks)

    def run(self, jobs: Sequence[Job], work: Work) -> Iterator[Outcome]:
        pending, suspects = list(jobs), []
        while pending:
            broken, started, pending = yield from self._round(pending, work, self.masks)
            if broken is not None and not started:
                yield from (self.crashed(job, broken) for job in pending)
                pending = []
            suspects += started
        for job in suspects:
            broken, _, _ = yield from self._round([job], work, self.masks[:1])
            if broken is not None:
                yield self.crashed(job, broken)

    def _round(self, jobs: list[Job], work: Work, masks: list[str | None]) -> Round:
        """Run ``jobs`` on a fresh pool of one worker per mask, yielding their outcomes as they finish; return
        why the pool broke (None: it did not), and the unfinished jobs that had started and had not."""
        context = multiprocessing.get_context("spawn")
        free_masks = context.Queue()
        for mask in masks:
            free_masks.put(mask)
        unfinished, broken = set(range(len(jobs))), None
        with tempfile.TemporaryDirectory(prefix="sdbench-started-") as markers:
            with ProcessPoolExecutor(len(masks), mp_context=context, initializer=_claim_gpu,
                                     initargs=(free_masks,)) as pool:
                futures: dict[Future, int] = {pool.submit(_announced, work, job, os.path.join(markers, str(i))): i
                                              for i, job in enumerate(jobs)}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        outcome = future.result()
                    except BrokenProcessPool as exc:
                        broken = exc
                        continue
                    except Exception as exc:  # noqa: BLE001 - a job whose outcome cannot come back fails alone
                        outcome = self.crashed(jobs[i], exc)
                    unfinished.remove(i)
                    yield outcome
            started = {int(name) for name in os.listdir(markers)}
        return (broken, [jobs[i] for i in sorted(unfinished & started)],
                [jobs[i] for i in sorted(unfinished - started)])


def make_local(options: Mapping[str, Any]) -> Executor:
    import torch

    gpus = visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())
    workers = options.get("workers")
    masks = worker_masks(str(options.get("device", "auto")), gpus, None if workers is None else int(workers))
    return WorkerPool(masks) if masks else InProcess()


@hookimpl
def sdbench_executors() -> list[ExecutorSpec]:
    return [ExecutorSpec("local", "This machine: in order on CPU or one GPU, one job per GPU with several",
                         make_local)]
