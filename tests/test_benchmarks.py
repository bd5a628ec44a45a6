"""The GPU benchmarks run end to end (on the CPU here, with a tiny backbone and small sizes), so that a task
lent a GPU can take its figures without first mending the scripts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_reports_both_rates_and_their_ratio():
    run = subprocess.run(
        [sys.executable, "benchmarks/train_step.py", "--backbone", "tiny", "--size", "32", "--batch", "8",
         "--steps", "3", "--device", "cpu", "--repeats", "1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    found = re.search(r"ours ([\d.]+) images/s, synthetic tensors ([\d.]+) images/s .* ratio ([\d.]+)x", run.stdout)
    assert found, run.stdout
    ours, synthetic, ratio = map(float, found.groups())
    assert ours > 0 and synthetic > 0 and abs(ratio - ours / synthetic) < 0.01


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu_and_two_cpu_runs_agree_exactly():
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu"], cwd=ROOT,
                         env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    headers = re.findall(r"^== (\d)\. ", run.stdout, flags=re.MULTILINE)
    assert headers == ["1", "2", "3", "4", "5"], run.stdout
    assert re.search(r"train step: ours [\d.]+ images/s, synthetic tensors [\d.]+ images/s .* ratio [\d.]+x",
                     run.stdout)
    assert re.search(r"loader: ours [\d.]+ batches/s, per-sample baseline [\d.]+ batches/s", run.stdout)
    assert run.stdout.count("| strategy ") == 2  # both runs' tables
    assert re.search(r"\d+ results in both runs .* max absolute difference 0 \(", run.stdout), run.stdout


def test_store_build_benchmark_reports_time_and_memory_ratios():
    run = subprocess.run(
        [sys.executable, "benchmarks/store_build.py", "--videos", "2", "--seconds", "4", "--size", "32",
         "--repeats", "1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert re.search(r"store build: 2 videos x 4 frames at 32 px", run.stdout), run.stdout
    time_line = re.search(r"time: ours ([\d.]+) s, whole-video baseline ([\d.]+) s .* ratio ([\d.]+)x", run.stdout)
    memory_line = re.search(r"peak memory: ours ([\d.]+) MiB, whole-video baseline ([\d.]+) MiB", run.stdout)
    assert time_line and memory_line, run.stdout
