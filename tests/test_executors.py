"""Executors' decisions, on the CPU: which GPU each local worker gets, where jobs run for a device, recovery
from a dead worker, and the options of Ray tasks (a stand-in ray module; no cluster is started)."""

from __future__ import annotations

import os
import queue
import sys
import time
import types
from dataclasses import dataclass

import pytest

from harness.errors import ConfigError
from harness.runs.executor import Job, Outcome
from plugins.executors.local import InProcess, WorkerPool, _claim_gpu, make_local, visible_gpus, worker_masks


def jobs(*keys: str) -> list[Job]:
    return [Job("teacher", key, "demo", "split", "tiny", seed) for seed, key in enumerate(keys)]


def test_workers_get_entries_of_the_parents_mask_as_written():
    assert visible_gpus(None, 2) == ["0", "1"]
    assert visible_gpus("2,3", 2) == ["2", "3"]
    assert visible_gpus("GPU-8f1c, MIG-2a7e", 2) == ["GPU-8f1c", "MIG-2a7e"]
    assert visible_gpus("1,7,bogus,4", 2) == ["1", "7"]  # torch saw 2: CUDA stops at the invalid entry
    assert visible_gpus("", 0) == []


@pytest.mark.parametrize("device, gpus, workers, masks", [
    ("cpu", ["2", "3"], None, []),
    ("cpu", ["2", "3"], 2, [None, None]),
    ("cuda:1", ["2", "3"], None, []),
    ("auto", ["2", "3"], None, ["2", "3"]),
    ("cuda", ["2", "3"], None, ["2", "3"]),
    ("auto", ["2", "3"], 3, ["2", "3", "2"]),
    ("auto", ["GPU-a"], None, []),
    ("auto", [], None, []),
    ("auto", [], 2, [None, None]),
])
def test_where_local_jobs_run_follows_the_device(device, gpus, workers, masks):
    assert worker_masks(device, gpus, workers) == masks


def test_several_workers_on_one_named_gpu_are_refused():
    with pytest.raises(ConfigError, match=r"workers: 2 needs device auto or cuda.*device cuda:1 runs its jobs in this"):
        worker_masks("cuda:1", ["0", "1"], 2)


def test_make_local_pins_workers_to_the_parents_gpus(monkeypatch: pytest.MonkeyPatch):
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    executor = make_local({"device": "auto"})
    assert isinstance(executor, WorkerPool) and executor.masks == ["2", "3"]
    assert isinstance(make_local({"device": "cpu"}), InProcess)
    assert isinstance(make_local({"device": "cuda:1"}), InProcess)


def test_a_worker_takes_its_mask_before_anything_else(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    masks: queue.Queue = queue.Queue()
    for mask in ("MIG-2a7e", None):
        masks.put(mask)
    _claim_gpu(masks)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "MIG-2a7e"
    _claim_gpu(masks)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "MIG-2a7e"  # None keeps what the worker inherited


@dataclass(frozen=True)
class DeadlyWork:
    """Like :class:`harness.runs.executor.Work`: succeeds, except that the jobs ``fatal`` kill their worker."""

    fatal: tuple[str, ...]
    seconds: float = 0.2

    def __call__(self, job: Job) -> Outcome:
        time.sleep(self.seconds)  # a fatal job dies while another runs and others wait
        if job.key in self.fatal:
            os._exit(1)
        return Outcome(job, ok=True, trained=True)


def test_a_dead_worker_fails_only_its_own_job():
    keys = ("a", "b", "c", "d", "e", "f")
    outcomes = list(WorkerPool([None, None]).run(jobs(*keys), DeadlyWork(("b",))))
    assert sorted(o.job.key for o in outcomes) == list(keys)
    failed = [o for o in outcomes if not o.ok]
    assert [o.job.key for o in failed] == ["b"] and "BrokenProcessPool" in failed[0].error and failed[0].trained


def test_jobs_that_all_kill_their_workers_all_fail_and_the_run_ends():
    outcomes = list(WorkerPool([None, None]).run(jobs("a", "b", "c"), DeadlyWork(("a", "b", "c"), 0.0)))
    assert sorted((o.job.key, o.ok) for o in outcomes) == [("a", False), ("b", False), ("c", False)]


class FakeRay(types.ModuleType):
    """Enough of ``ray`` for :class:`RayExecutor`: tasks run at once, in this process."""

    def __init__(self, cluster_gpus: int) -> None:
        super().__init__("ray")
        self.cluster_gpus = cluster_gpus
        self.remote_options: list[dict] = []

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict:
        return {"CPU": 8, "GPU": self.cluster_gpus}

    def remote(self, **options):
        self.remote_options.append(options)
        return lambda function: types.SimpleNamespace(remote=lambda *args: (function, args))

    def wait(self, refs: list, num_returns: int) -> tuple[list, list]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: tuple) -> Outcome:
        function, args = ref
        return function(*args)


@pytest.mark.parametrize("cluster_gpus, options, expected", [
    (2, {}, {"num_gpus": 1, "num_cpus": 1, "max_retries": 0, "max_calls": 1}),
    (2, {"gpus_per_job": 0.5, "cpus_per_job": 4}, {"num_gpus": 0.5, "num_cpus": 4, "max_retries": 0, "max_calls": 1}),
    (0, {}, {"num_gpus": 0, "num_cpus": 1, "max_retries": 0}),
])
def test_ray_gpu_tasks_get_a_fresh_worker_each(monkeypatch: pytest.MonkeyPatch, cluster_gpus, options, expected):
    from plugins.executors.ray_tasks import RayExecutor

    ray = FakeRay(cluster_gpus)
    monkeypatch.setitem(sys.modules, "ray", ray)
    outcomes = list(RayExecutor(options).run(jobs("a", "b"), lambda job: Outcome(job, ok=True, trained=True)))
    assert [o.job.key for o in outcomes] == ["a", "b"] and all(o.ok for o in outcomes)
    assert ray.remote_options == [expected]


def test_ray_takes_the_task_options_where_they_are_given():
    ray = pytest.importorskip("ray")
    from plugins.executors.ray_tasks import _call, task_options

    task = ray.remote(**task_options(1, 1))(_call)  # .options() would refuse max_calls
    assert task._max_calls == 1  # what Ray's worker pool reads; no cluster needed
