"""The GPU training-step benchmark runs end to end (on the CPU here, with a tiny backbone), so that a task lent
a GPU can take its figures without first mending the script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
