"""Runs that survive anything: kill -9 at several points, failed jobs, rerun policies, executors, gc.

Runs here go through ``python -m harness.cli`` in subprocesses with one thread each, so that every run of
the same plan does the same floating-point work and results can be compared for equality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from harness.cli import _human, main
from harness.runs.gc import STALE_TEMP_S

ROOT = Path(__file__).resolve().parent.parent
PLAN = """
datasets: [demo-phases]
strategies: [hard, iese]
seeds: [0, 1]
image_size: 32
teacher: {epochs: 3, batch_size: 32}
student: {epochs: 2, batch_size: 32}
dataset_options:
  demo-phases: {num_videos: 6}
"""
KEYS = ["dataset", "split", "backbone", "strategy", "seed", "metric"]


def bench(*args: str, config: Path, home: Path, kill_at: str | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"SDBENCH_HOME": str(home), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "PYTHONPATH": str(ROOT)}
    env.pop("SDBENCH_KILL_AT", None)
    if kill_at:
        env["SDBENCH_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "harness.cli", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def results(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv").sort_values(KEYS).reset_index(drop=True)[KEYS + ["value"]]


def assert_no_corrupt_artifact(run_dir: Path) -> None:
    """Every finished job directory is complete and every file in it loads."""
    for stage in (run_dir / "jobs").iterdir():
        for job in stage.iterdir():
            if job.name.startswith("."):
                continue
            if job.is_file():
                assert job.name.endswith(".failed.json"), job
                continue
            assert (job / "done.json").is_file(), job
            for path in job.rglob("*"):
                if path.suffix == ".npy":
                    np.load(path)
                elif path.suffix == ".json":
                    json.loads(path.read_text())


@pytest.fixture(scope="module")
def plan(config_file: Callable[[str], Path]) -> Path:
    return config_file(PLAN)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def reference(plan: Path, home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every interrupted one must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference")
    done = bench("run", "--out", str(out), "--quiet", config=plan, home=home)
    assert done.returncode == 0, done.stderr
    return out


def batches_per_epoch(home: Path) -> int:
    os.environ["SDBENCH_HOME"] = str(home)
    from harness.hooks.registry import get_registry

    dataset = get_registry().get("dataset", "demo-phases").factory({"num_videos": 6})
    train = dataset.splits()[0].train
    frames = sum(len(dataset.index().videos[v]) for v in train)
    return -(-frames // 32)


@pytest.mark.parametrize("point", ["second teacher epoch", "job-done:1", "artifact-rename:2", "atomic-write:5",
                                   "student batch"])
def test_killed_run_resumes_to_identical_results(point: str, plan: Path, home: Path, reference: Path,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    per_epoch = batches_per_epoch(home)
    kill_at = {"second teacher epoch": f"batch:{per_epoch + 2}",
               "student batch": f"batch:{2 * 3 * per_epoch + 3}"}.get(point, point)
    # A fresh frame store for one case, so that its kill lands while frames are being written.
    run_home = tmp_path / "home" if point.startswith("atomic-write") else home
    out = tmp_path / "run"
    killed = bench("run", "--out", str(out), "--quiet", config=plan, home=run_home, kill_at=kill_at)
    assert killed.returncode == -9, f"{point} was never reached:\n{killed.stderr}"
    if point.startswith("atomic-write"):  # the kill landed while the frame store was being written
        frames = list(run_home.glob("frames/demo-phases/*/*/32/*"))
        assert 0 < len([f for f in frames if f.suffix == ".npy"]) < 6 and any(f.suffix == ".tmp" for f in frames)
        assert_gc_removes_only_stale_frame_store_temporaries(run_home, monkeypatch, capsys)
    if (out / "jobs").exists():
        assert_no_corrupt_artifact(out)
    resumed = bench("run", "--out", str(out), config=plan, home=run_home)
    assert resumed.returncode == 0, resumed.stderr
    assert_no_corrupt_artifact(out)
    pd.testing.assert_frame_equal(results(out), results(reference), check_exact=True)
    if point == "second teacher epoch":
        assert "seed 0 epoch 1/3" not in resumed.stderr and "seed 0 epoch 2/3" in resumed.stderr


def assert_gc_removes_only_stale_frame_store_temporaries(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    """``bench gc`` leaves a fresh temporary file of the frame store alone (it may be a live write), and
    removes it, and nothing else, once it is older than a live write can be."""
    monkeypatch.setenv("SDBENCH_HOME", str(home))
    stored = sorted(home.glob("frames/**/*.npy"))
    temporaries = sorted(home.glob("frames/**/.*.tmp"))
    assert main(["gc", "--dry-run"]) == 0 and "0 item(s)" in capsys.readouterr().out
    stale = time.time() - 2 * STALE_TEMP_S
    for path in temporaries:
        os.utime(path, (stale, stale))
    assert main(["gc"]) == 0
    assert f"in {len(temporaries)} item(s)" in capsys.readouterr().out
    assert not any(path.exists() for path in temporaries) and sorted(home.glob("frames/**/*.npy")) == stored


def test_new_strategy_on_a_finished_run_trains_no_teacher(plan: Path, home: Path, reference: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(out)], check=True)
    added = bench("run", "--out", str(out), "--strategies", "hard,iese,it", config=plan, home=home)
    assert added.returncode == 0, added.stderr
    assert "trained 0 teacher(s)" in added.stderr
    assert "it" in set(pd.read_csv(out / "results.csv")["strategy"])


def test_dry_run_counts_finished_and_failed_jobs_per_stage(plan: Path, home: Path, reference: Path) -> None:
    listed = bench("run", "--out", str(reference), "--dry-run", config=plan, home=home)
    assert listed.returncode == 0, listed.stderr
    assert "teacher jobs: 2 (2 complete)" in listed.stdout
    assert "soft-label jobs: 4" in listed.stdout and "student jobs: at most 4" in listed.stdout
    assert "frames jobs: 1" in listed.stdout and "rerun policy: failed" in listed.stdout


@pytest.fixture
def broken_teacher_seed_1(monkeypatch: pytest.MonkeyPatch):
    """Teachers of seed 1 of demo-phases raise; everything else trains normally."""
    from harness.runs import jobs

    real = jobs.train_teacher

    def train_teacher(context, cell, job, directory):
        if job.seed == 1 and cell.data.name == "demo-phases":
            raise RuntimeError("out of memory (simulated)")
        return real(context, cell, job, directory)

    monkeypatch.setattr(jobs, "train_teacher", train_teacher)


def run_in_process(plan: Path, out: Path, *extra: str) -> int:
    return main(["run", "--config", str(plan), "--out", str(out), "--datasets", "demo-phases,demo-triplets",
                 "--strategies", "hard,iese", "--seeds", "0,1", *extra])


def test_failed_job_is_recorded_and_does_not_stop_independent_jobs(plan: Path, tmp_path: Path,
                                                                   broken_teacher_seed_1,
                                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run_in_process(plan, out) == 0
    captured = capsys.readouterr()
    produced = pd.read_csv(out / "results.csv")
    assert set(produced["dataset"]) == {"demo-triplets"}
    missing = pd.read_csv(out / "missing.csv")
    assert len(missing) == 2 * 2 and set(missing["dataset"]) == {"demo-phases"}
    assert missing["reason"].str.contains("teacher seed 1 failed: RuntimeError: out of memory").all()
    assert "Missing results (4)" in captured.out and "out of memory (simulated)" in captured.out
    failures = list((out / "jobs" / "teacher").glob("*.failed.json"))
    assert len(failures) == 1
    record = json.loads(failures[0].read_text())
    assert "out of memory" in record["error"] and "Traceback" in record["traceback"]
    assert main(["report", str(out)]) == 0
    assert "Missing results (4)" in capsys.readouterr().out


def test_rerun_policies_keep_or_retry_failures(plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               broken_teacher_seed_1, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run_in_process(plan, out) == 0
    capsys.readouterr()
    monkeypatch.undo()  # the teacher of seed 1 would now succeed

    assert run_in_process(plan, out, "--rerun", "never") == 0
    captured = capsys.readouterr()
    assert "trained 0 teacher(s) and 0 student(s)" in captured.err
    assert "not retried under rerun: never" in pd.read_csv(out / "missing.csv")["reason"].iloc[0]

    assert run_in_process(plan, out) == 0  # default policy: failed
    captured = capsys.readouterr()
    assert "trained 1 teacher(s)" in captured.err and "Missing results" not in captured.out
    assert pd.read_csv(out / "missing.csv").empty
    assert not list((out / "jobs" / "teacher").glob("*.failed.json"))

    assert run_in_process(plan, out, "--rerun", "all") == 0
    assert "trained 4 teacher(s)" in capsys.readouterr().err


def test_gc_lists_then_frees_checkpoints_and_leftovers(reference: Path, plan: Path, home: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(out)], check=True)
    leftover = out / "jobs" / "teacher" / ".history.json.abc123.tmp"
    leftover.write_text("{")
    stale = time.time() - 2 * STALE_TEMP_S  # a killed write's; a fresh one may be another run's live write
    os.utime(leftover, (stale, stale))
    locks = list((out / "jobs").glob("*/.partial-*.lock"))  # they stay after their jobs; gc removes them
    checkpoints = list((out / "jobs").glob("*/*/checkpoint.pt"))
    finished = [d for stage in ("teacher", "student") for d in (out / "jobs" / stage).iterdir() if d.is_dir()
                and not d.name.startswith(".")]
    assert len(checkpoints) == len(finished) == 2 + 4 and len(locks) == 2 + 4 + 4
    total = sum(p.stat().st_size for p in checkpoints) + leftover.stat().st_size

    assert main(["gc", str(out), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert all(str(p) in listing for p in checkpoints) and str(leftover) in listing
    assert all(p.exists() for p in checkpoints)

    assert main(["gc", str(out)]) == 0
    assert not any(p.exists() for p in checkpoints + locks) and not leftover.exists()
    assert f"freed {_human(total)} in {len(checkpoints) + 1 + len(locks)} item(s)" in capsys.readouterr().out
    rerun = bench("run", "--out", str(out), config=plan, home=home)
    assert rerun.returncode == 0 and "trained 0 teacher(s) and 0 student(s)" in rerun.stderr
    pd.testing.assert_frame_equal(results(out), results(reference), check_exact=True)


@pytest.mark.parametrize("executor, options", [
    ("local", "executor_options: {local: {workers: 2}}"),
    ("ray", "executor_options: {ray: {init: {num_cpus: 2}}}"),
    ("slurm", "executor_options: {slurm: {cluster: local, parameters: {timeout_min: 10}}}"),
])
def test_executors_reproduce_the_local_results(executor: str, options: str, plan: Path, home: Path,
                                               reference: Path, tmp_path: Path) -> None:
    pytest.importorskip({"local": "os", "ray": "ray", "slurm": "submitit"}[executor])
    config = tmp_path / "plan.yaml"
    config.write_text(plan.read_text() + options + "\n")
    out = tmp_path / "run"
    done = bench("run", "--out", str(out), "--executor", executor, config=config, home=home, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "trained 2 teacher(s) and 4 student(s)" in done.stderr
    pd.testing.assert_frame_equal(results(out), results(reference), check_exact=True)


def test_executor_without_its_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import ConfigError
    from plugins.executors.ray_tasks import make_ray
    from plugins.executors.slurm import make_slurm

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ConfigError, match=r"pip install 'sdbench\[ray\]'"):
        make_ray({})
    with pytest.raises(ConfigError, match=r"pip install 'sdbench\[slurm\]'"):
        make_slurm({})
