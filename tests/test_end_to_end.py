"""The whole path at tiny size: demo data → teachers → strategies → students → tables, and the rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
STRATEGIES = ["hard", "last", "best-val", "it", "iee", "iese", "iese-weighted", "iese-sharpened", "iese-calibrated",
              "mi-checkpoint", "early-stopped", "iee-logits", "iese-logits"]
TINY = """
seeds: [0, 1]
image_size: 32
teacher: {epochs: 3, batch_size: 32}
student: {epochs: 1, batch_size: 32}
dataset_options:
  demo-triplets: {num_videos: 6}
  demo-phases: {num_videos: 6}
"""


@pytest.fixture(scope="module")
def tiny_config(config_file: Callable[[str], Path]) -> Path:
    return config_file(TINY)


@pytest.fixture(scope="module")
def finished_run(tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--datasets", "all", "--strategies", "all", "--config", str(tiny_config),
                 "--out", str(out)]) == 0
    return out


def test_run_writes_results_for_every_dataset_strategy_and_seed(finished_run: Path):
    results = pd.read_csv(finished_run / "results.csv")
    primary = results[results["primary"]]
    assert set(primary["dataset"]) == {"demo-triplets", "demo-phases"}
    assert set(primary["strategy"]) == set(STRATEGIES)
    assert len(primary) == 2 * len(STRATEGIES) * 2
    assert primary["value"].between(0, 1).all()
    table = (finished_run / "comparison.md").read_text()
    for name in STRATEGIES + ["demo-triplets (mAP)", "demo-phases (accuracy)"]:
        assert name in table
    hard = results[results["strategy"] == "hard"]
    assert (hard["checkpoints"] == "hard labels").all()
    iese = results[(results["strategy"] == "iese") & results["primary"]]
    assert iese["checkpoints"].str.contains("s0e").all() and iese["checkpoints"].str.contains("s1e").all()


def test_run_record_holds_config_versions_and_revision(finished_run: Path):
    record = json.loads((finished_run / "run.json").read_text())
    assert record["config"]["seeds"] == [0, 1]
    assert record["packages"]["torch"] and record["packages"]["timm"]
    assert "git_revision" in record
    assert record["plugins"]["strategy"]["iese"].startswith("plugins.strategies.intermediate")


def test_each_teacher_is_trained_once_and_records_its_history(finished_run: Path):
    teachers = sorted(p for p in (finished_run / "jobs" / "teacher").iterdir() if not p.name.startswith("."))
    assert len(teachers) == 2 * 2  # datasets x seeds, shared by all six strategies
    history = json.loads((teachers[0] / "history" / "history.json").read_text())
    assert [r["epoch"] for r in history["epochs"]] == [1, 2, 3]
    assert (teachers[0] / "history" / "probs" / "train_003.npy").is_file()
    assert (teachers[0] / "history" / "probs" / "val_003.npy").is_file()


def test_rerun_trains_nothing_and_report_rebuilds_the_table(finished_run: Path, tiny_config: Path,
                                                            capsys: pytest.CaptureFixture):
    before = {p: p.stat().st_mtime_ns for p in (finished_run / "jobs").rglob("done.json")}
    capsys.readouterr()
    assert main(["run", "--config", str(tiny_config), "--out", str(finished_run)]) == 0
    captured = capsys.readouterr()
    assert "trained 0 teacher(s) and 0 student(s)" in captured.err
    assert before == {p: p.stat().st_mtime_ns for p in (finished_run / "jobs").rglob("done.json")}
    table = (finished_run / "comparison.md").read_text()
    (finished_run / "comparison.md").unlink()
    assert main(["report", str(finished_run)]) == 0
    assert (finished_run / "comparison.md").read_text() == table
    assert table.strip() in capsys.readouterr().out


def test_new_strategy_on_finished_run_trains_only_students(finished_run: Path, tiny_config: Path,
                                                           capsys: pytest.CaptureFixture):
    capsys.readouterr()
    args = ["run", "--config", str(tiny_config), "--out", str(finished_run), "--datasets", "demo-phases",
            "--strategies", "hard,iee"]
    config = tiny_config.parent / "window.yaml"
    config.write_text(tiny_config.read_text() + "strategy_params: {iee: {epochs: [1]}}\n")
    args[2] = str(config)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "trained 0 teacher(s)" in err


def test_unknown_strategy_suggests_close_name(tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["run", "--strategies", "best_val", "--config", str(tiny_config), "--out", str(tmp_path)]) == 2
    assert "did you mean 'best-val'" in capsys.readouterr().err


def test_external_strategy_package_is_found_and_run(tiny_config: Path, tmp_path: Path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(ROOT / "examples" / "sdbench-example-strategy")],
                   check=True, capture_output=True, timeout=300)
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listing = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "middle-third" in listing.stdout and "sdbench-example-strategy 0.1.0" in listing.stdout
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--datasets", "demo-phases", "--strategies",
                          "all", "--seeds", "0", "--config", str(tiny_config), "--out", str(tmp_path / "run")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "middle-third" in run.stdout and "iese" in run.stdout


def test_dry_run_lists_jobs_and_cost_without_training(finished_run: Path, tiny_config: Path,
                                                      capsys: pytest.CaptureFixture):
    capsys.readouterr()
    assert main(["run", "--dry-run", "--config", str(tiny_config), "--out", str(finished_run),
                 "--datasets", "demo-triplets,demo-phases"]) == 0
    out = capsys.readouterr().out
    assert "teacher jobs: 4 (4 complete)" in out
    assert "student jobs: at most 52" in out  # 4 teachers x 13 built-in strategies
    # ours: 4 teachers x 3 epochs + 52 students x 1 epoch = 64; naive: 52 x (3 + 1) = 208
    assert "training epochs: 64, against 208" in out
