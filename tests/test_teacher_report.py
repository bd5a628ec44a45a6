"""`bench report` adds the per-teacher-epoch diagnostics table, read from the stored histories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.report.results import write_results
from harness.report.teachers import teacher_epochs
from harness.train.history import EpochRecord, HistoryWriter

LABELS = np.array([[1, 0], [0, 1]], dtype=np.uint8)


def write_teacher(run_dir: Path, key: str, seed: int, confidences: list[float], val: list[float],
                  done: bool = True) -> None:
    directory = run_dir / "jobs" / "teacher" / key
    writer = HistoryWriter(directory / "history", seed, "multilabel", "mAP", LABELS, LABELS)
    for epoch, (c, v) in enumerate(zip(confidences, val), start=1):
        probs = np.where(LABELS == 1, c, 1 - c).astype(np.float32)
        writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"mAP": v}), probs, probs)
    if done:
        job = {"dataset": "demo-triplets", "split": ["fold1", ["v1"], ["v2"], ["v3"]], "backbone": "timm:tiny",
               "seed": seed}
        (directory / "done.json").write_text(json.dumps({"stage": "teacher", "key": key, "job": job}))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_teacher(tmp_path, "b", 1, [0.6, 0.9], [0.5, 0.4])
    write_teacher(tmp_path, "a", 0, [0.7, 0.8], [0.3, 0.6])
    write_teacher(tmp_path, ".tmp-c-123", 2, [0.5], [0.1], done=False)  # an unfinished job: left out
    write_results([{"dataset": "demo-triplets", "split": "fold1", "backbone": "tiny", "strategy": "best-val",
                    "seed": 0, "metric": "mAP", "value": 0.5, "primary": True, "checkpoints": "s0e2",
                    "student_key": "k"}], tmp_path)
    return tmp_path


def test_one_row_per_finished_teacher_epoch(run_dir: Path):
    epochs = teacher_epochs(run_dir)
    assert epochs[["seed", "epoch"]].values.tolist() == [[0, 1], [0, 2], [1, 1], [1, 2]]
    assert set(epochs["split"]) == {"fold1"} and set(epochs["dataset"]) == {"demo-triplets"}
    assert epochs["best_val"].tolist() == [False, True, True, False]
    # probability c on the true labels and 1 - c elsewhere: max-probability c, calibration error 1 - c
    np.testing.assert_allclose(epochs["mean_max_prob"], [0.7, 0.8, 0.6, 0.9], rtol=1e-6)
    np.testing.assert_allclose(epochs["ece"], [0.3, 0.2, 0.4, 0.1], rtol=1e-5)


def test_report_prints_and_writes_the_diagnostics_table(run_dir: Path, capsys: pytest.CaptureFixture):
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "| demo-triplets | fold1   | timm:tiny  | 0      | 2*      | 0.5000       | 60.0 mAP  | 0.800" in out
    assert "expected calibration error" in out
    assert (run_dir / "teacher_diagnostics.md").read_text() in out
    csv = (run_dir / "teacher_diagnostics.csv").read_text().splitlines()
    assert csv[0] == ("dataset,split,backbone,seed,epoch,train_loss,val_metric,val_score,best_val,"
                      "mean_max_prob,mean_entropy,ece") and len(csv) == 5


def test_report_without_teachers_prints_only_the_comparison(run_dir: Path, capsys: pytest.CaptureFixture):
    for done in run_dir.glob("jobs/teacher/*/done.json"):
        done.unlink()
    assert main(["report", str(run_dir)]) == 0
    assert "calibration" not in capsys.readouterr().out
    assert not (run_dir / "teacher_diagnostics.md").exists()
