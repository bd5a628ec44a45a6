"""Two processes on one run directory: a job is trained once, a busy job is waited for, gc leaves running jobs
alone, and a file system that refuses ``flock`` locks every job the same way.

Module-level imports stay light: the helper processes are spawned, and import this module.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import filelock
import pytest

from harness.runs import jobs as job_bodies
from harness.runs.gc import STALE_TEMP_S, collect, find_garbage
from harness.runs.store import CHECKPOINT, DONE, ArtifactStore
from harness.system import locks
from harness.system.locks import lock_kind

ROOT = Path(__file__).resolve().parent.parent
PLAN = """
datasets: [demo-phases]
strategies: [hard, best-val]
seeds: [0, 1]
image_size: 16
teacher: {epochs: 2, batch_size: 32}
student: {epochs: 1, batch_size: 32}
dataset_options:
  demo-phases: {num_videos: 5}
executor_options: {local: {workers: 1}}
"""
KEYS = ["dataset", "split", "backbone", "strategy", "seed", "metric"]
TRAINED = re.compile(r"trained (\d+) teacher\(s\) and (\d+) student\(s\)")
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def plan(config_file: Callable[[str], Path]) -> Path:
    return config_file(PLAN)


# -- the store: two processes, one job ----------------------------------------------------------------------


def _enter(root: str, barrier, results) -> None:
    store = ArtifactStore(Path(root))
    barrier.wait(30)
    with store.writing("teacher", "abc", {}) as work:
        if work is None:
            results.put("found complete")
            return
        time.sleep(1)  # long enough for the other process to be waiting for the lock
        (work / "payload.txt").write_text(str(os.getpid()))
        results.put("trained")


def test_of_two_processes_entering_one_job_one_trains_and_the_other_finds_it_complete(tmp_path: Path) -> None:
    barrier, results = SPAWN.Barrier(2), SPAWN.Queue()
    processes = [SPAWN.Process(target=_enter, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert sorted(results.get(timeout=5) for _ in processes) == ["found complete", "trained"]
    trainer = int((ArtifactStore(tmp_path).path("teacher", "abc") / "payload.txt").read_text())
    assert trainer in {process.pid for process in processes}


# -- the runner: a busy job is deferred, then waited for ----------------------------------------------------


def _hold_job(root: str, key: str, ready, release) -> None:
    """Run teacher job ``key`` as another ``bench run`` would: finish it once ``release`` is set."""
    with ArtifactStore(Path(root)).writing("teacher", key, {}) as work:
        ready.set()
        if not release.wait(20):
            raise SystemExit("the runner never trained its other job while this one was held")
        (work / "by.txt").write_text("the other process")


def _runner(plan: Path, out: Path):
    """A runner of ``plan`` writing to ``out``, and the stream its progress lines go to."""
    from harness.config import load_config
    from harness.experiments.run import Runner
    from harness.hooks.registry import get_registry
    from harness.system.progress import Progress

    stream = io.StringIO()
    return Runner(load_config(plan), out, get_registry(), Progress(stream=stream)), stream


def _teacher_jobs(runner, seeds: list[int]):
    cell = runner.plan.cells(runner.plan.resolve_datasets()[0])[0]
    return [runner.plan.teacher_job(cell, seed) for seed in seeds]


def _another_run_enters(target, runner, job):
    """Start ``target`` (``_hold_job`` or ``_fail_job``) on ``job`` in another process, as another ``bench run``
    would, once it holds the job's lock; the process and the event that lets it go on."""
    ready, release = SPAWN.Event(), SPAWN.Event()
    other = SPAWN.Process(target=target, args=(str(runner.store.root), job.key, ready, release))
    other.start()
    assert ready.wait(30)
    return other, release


def test_a_job_another_process_holds_is_deferred_then_awaited_and_not_trained_again(
        plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, stream = _runner(plan, tmp_path / "run")
    held, free = _teacher_jobs(runner, [0, 1])
    other, release = _another_run_enters(_hold_job, runner, held)

    def train_teacher(context, cell, job, directory: Path) -> None:
        (directory / "by.txt").write_text("this run")
        release.set()

    monkeypatch.setattr(job_bodies, "train_teacher", train_teacher)
    outcomes = runner.schedule([held, free])
    other.join(30)
    assert other.exitcode == 0
    assert outcomes[held.key].ok and not outcomes[held.key].trained
    assert outcomes[free.key].ok and outcomes[free.key].trained and runner.trained["teacher"] == 1
    assert (runner.store.path("teacher", held.key) / "by.txt").read_text() == "the other process"
    assert f"waiting for {held.describe()}: held by another process" in stream.getvalue()


def _fail_job(root: str, key: str, ready, release) -> None:
    """Run teacher job ``key`` as another ``bench run`` would, and fail it (recorded under its lock)."""
    store, error = ArtifactStore(Path(root)), RuntimeError("out of memory (in the other run)")
    try:
        with store.writing("teacher", key, {}):
            ready.set()
            release.wait(20)
            store.record_failure("teacher", key, {}, error)
            raise error
    except RuntimeError:
        pass


def test_a_job_that_failed_in_another_run_meanwhile_is_not_retried(
        plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, _ = _runner(plan, tmp_path / "run")
    held, free = _teacher_jobs(runner, [0, 1])
    other, release = _another_run_enters(_fail_job, runner, held)
    trained = []

    def train_teacher(context, cell, job, directory: Path) -> None:
        trained.append(job.seed)
        release.set()

    monkeypatch.setattr(job_bodies, "train_teacher", train_teacher)
    outcomes = runner.schedule([held, free])
    other.join(30)
    assert trained == [free.seed]
    assert not outcomes[held.key].ok and not outcomes[held.key].trained
    assert outcomes[held.key].error == ("RuntimeError: out of memory (in the other run) (failed in another run "
                                        "meanwhile; not retried by this one)")
    assert outcomes[free.key].ok and outcomes[free.key].trained


def test_where_flock_is_refused_every_job_is_locked_the_same_way_and_none_fails(
        plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, stream = _runner(plan, tmp_path / "run")
    jobs = _teacher_jobs(runner, [0, 1, 2])

    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(locks, "_KINDS", {})
    monkeypatch.setattr(job_bodies, "train_teacher", lambda context, cell, job, directory: None)
    outcomes = runner.schedule(jobs)
    assert all(outcome.ok and outcome.trained for outcome in outcomes.values()), stream.getvalue()
    assert runner.trained["teacher"] == 3 and "FAILED" not in stream.getvalue()
    assert all(runner.store.is_complete("teacher", job.key) for job in jobs)
    assert not list((runner.store.root / "teacher").glob("*.failed.json"))
    assert lock_kind(runner.store.root / "teacher") is filelock.SoftFileLock


def _write_soft_labels(root: str, key: str, ready) -> None:
    """Compute soft labels ``key`` as another ``bench run`` would, while the runner waits for them."""
    with ArtifactStore(Path(root)).writing("softlabels", key, {}) as work:
        ready.set()
        time.sleep(1)
        (work / "selection.json").write_text(json.dumps(
            {"strategy": "hard", "checkpoints": [], "weights": None, "note": "the other process",
             "temperature": 1.0, "teacher_keys": {}, "digest": "from-the-other-process"}))


def test_soft_labels_another_process_computes_are_awaited_and_read_not_replaced(plan: Path, tmp_path: Path) -> None:
    runner, stream = _runner(plan, tmp_path / "run")
    strategy = runner.plan.resolve_strategies()["hard"]
    teachers = {0: ("teacher-key", None)}  # soft labels that are found complete read no teacher history
    key, _ = runner.plan.teaching_key("hard", {}, 0, {0: "teacher-key"}, strategy.cache_identity())
    ready = SPAWN.Event()
    other = SPAWN.Process(target=_write_soft_labels, args=(str(runner.store.root), key, ready))
    other.start()
    assert ready.wait(30)
    found, digest, selection = runner.soft_labels("hard", strategy, 0, teachers)
    other.join(30)
    assert other.exitcode == 0
    assert (found, digest, selection.note) == (key, "from-the-other-process", "the other process")
    assert json.loads((runner.store.path("softlabels", key) / "selection.json").read_text())["note"] == \
        "the other process"
    assert f"waiting for soft labels hard seed 0 ({key}): held by another process" in stream.getvalue()


# -- gc: never a running job's things, nor a fresh temporary file -------------------------------------------


def _hold_running_job(root: str, ready, release) -> None:
    with ArtifactStore(Path(root)).writing("teacher", "running", {}) as work:
        (work / CHECKPOINT).write_bytes(b"epoch 1")
        temporary = work / ".history.json.abc123.tmp"
        temporary.write_text("{")
        stale = time.time() - 2 * STALE_TEMP_S
        os.utime(temporary, (stale, stale))
        ready.set()
        release.wait(30)


def _stopped_job(store: ArtifactStore, key: str) -> None:
    with pytest.raises(RuntimeError):
        with store.writing("teacher", key, {}) as work:
            (work / CHECKPOINT).write_bytes(b"epoch 1")
            raise RuntimeError("killed")


def test_gc_leaves_every_file_of_a_running_job_alone(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "jobs")
    _stopped_job(store, "stopped")
    ready, release = SPAWN.Event(), SPAWN.Event()
    other = SPAWN.Process(target=_hold_running_job, args=(str(store.root), ready, release))
    other.start()
    try:
        assert ready.wait(30)
        listed = {item.path for item in find_garbage(tmp_path, unfinished=True)}
        assert listed == {store.partial_path("teacher", "stopped"), store.lock_path("teacher", "stopped")}
    finally:
        release.set()
        other.join(30)
    assert store.is_complete("teacher", "running")
    finished = store.path("teacher", "running")
    assert {item.path for item in find_garbage(tmp_path)} == {
        finished / CHECKPOINT, finished / ".history.json.abc123.tmp", store.lock_path("teacher", "running")}


def _take_lock(root: str, key: str, ready, release) -> None:
    with ArtifactStore(Path(root)).writing("teacher", key, {}):
        ready.set()
        release.wait(30)


def test_gc_keeps_the_work_of_a_job_started_after_it_was_listed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "jobs")
    _stopped_job(store, "stopped")
    garbage = find_garbage(tmp_path, unfinished=True)
    ready, release = SPAWN.Event(), SPAWN.Event()
    other = SPAWN.Process(target=_take_lock, args=(str(store.root), "stopped", ready, release))
    other.start()
    try:
        assert ready.wait(30)
        assert collect(garbage) == []
        assert (store.partial_path("teacher", "stopped") / CHECKPOINT).is_file()
    finally:
        release.set()
        other.join(30)
    assert (store.path("teacher", "stopped") / CHECKPOINT).read_bytes() == b"epoch 1"  # resumed, then finished


def test_only_temporary_files_and_set_aside_directories_untouched_for_long_are_garbage(tmp_path: Path) -> None:
    stage = tmp_path / "jobs" / "teacher"
    fresh_file, old_file = stage / ".history.json.fresh1.tmp", stage / ".history.json.old123.tmp"
    fresh_aside, old_aside = stage / ".old-fresh-11", stage / ".old-stale-22"
    for aside in (fresh_aside, old_aside):
        aside.mkdir(parents=True)
        (aside / DONE).write_text("{}")
    for path in (fresh_file, old_file):
        path.write_text("{")
    stale = time.time() - 2 * STALE_TEMP_S
    for path in (old_file, old_aside):
        os.utime(path, (stale, stale))
    assert {item.path for item in find_garbage(tmp_path)} == {old_file, old_aside}


# -- acceptance: two `bench run` on one directory -----------------------------------------------------------


def _bench_run(plan: Path, out: Path, home: Path) -> subprocess.Popen:
    env = os.environ | {"SDBENCH_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "PYTHONPATH": str(ROOT)}
    env.pop("SDBENCH_KILL_AT", None)
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--config", str(plan), "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[str, tuple[int, int]]:
    """Wait for a ``bench run``; the tables it printed, and the teachers and students it trained."""
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    teachers, students = TRAINED.search(err).groups()
    return out, (int(teachers), int(students))


def _results(out: Path):
    import pandas as pd

    return pd.read_csv(out / "results.csv").sort_values(KEYS).reset_index(drop=True)[KEYS + ["value"]]


def test_two_runs_on_one_directory_train_every_job_once_and_both_write_complete_results(
        plan: Path, tmp_path: Path) -> None:
    from pandas.testing import assert_frame_equal

    home = Path(os.environ["SDBENCH_HOME"])  # the session's: its demo data is generated once
    table, expected = _finish(_bench_run(plan, tmp_path / "single", home))
    out = tmp_path / "shared"
    first, second = _bench_run(plan, out, home), _bench_run(plan, out, home)
    (first_table, first_trained), (second_table, second_trained) = _finish(first), _finish(second)
    assert first_table == second_table == table
    assert tuple(map(sum, zip(first_trained, second_trained))) == expected, (first_trained, second_trained)
    for stage, count in zip(("teacher", "student"), expected):
        assert len(list((out / "jobs" / stage).glob(f"*/{DONE}"))) == count
    assert_frame_equal(_results(out), _results(tmp_path / "single"), check_exact=True)
