"""Numbers that cannot be silently wrong: a diverged fit stops with a failure naming its job, epoch and batch
and leaves no number behind; non-finite probabilities never reach soft labels or window rules; degenerate
students are flagged in results.csv and the tables; students log their losses per epoch, across a resume."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.cli import main
from harness.errors import DataError, DivergedError
from harness.metrics.degenerate import SPREAD, degenerate
from harness.science.strategy import Checkpoint, Selection, Strategy, soft_labels
from harness.science.windows import window_rule
from harness.train.history import EpochRecord, HistoryWriter, LossLog, TeacherHistory

PLAN = """
strategies: [hard, best-val]
seeds: [0]
image_size: 16
teacher: {{epochs: 2, batch_size: 16}}
student: {{epochs: 2, batch_size: 16, lr: {student_lr}}}
dataset_options:
  demo-phases: {{num_videos: 6}}
"""


def bench_run(out: Path, *args: str, student_lr: float = 2e-3) -> None:
    plan = out.parent / f"{out.name}.yaml"
    plan.write_text(PLAN.format(student_lr=student_lr))
    assert main(["run", "--config", str(plan), "--out", str(out), *args]) == 0


def batches_per_epoch(batch_size: int = 16) -> int:
    """Training batches per epoch of the plan's demo-phases."""
    from harness.hooks.registry import get_registry

    data = get_registry().get("dataset", "demo-phases").factory({"num_videos": 6})
    frames = len(data.index().labels(data.splits()[0].train)[0])
    return frames // batch_size + (frames % batch_size > 1)  # a final single frame is dropped


def nan_loss_at(monkeypatch: pytest.MonkeyPatch, call: int, soft_targets: bool) -> None:
    """The training loss is NaN at the ``call``-th batch among the fits with soft targets (distilled students),
    or among those with class indices (multi-class teachers and hard-label students)."""
    import harness.train.fit as training

    real, calls = training.task_loss, itertools.count(1)

    def task_loss(logits, targets, task):
        loss = real(logits, targets, task)
        if (targets.dtype != torch.int64) == soft_targets and next(calls) == call:
            return loss * float("nan")
        return loss

    monkeypatch.setattr(training, "task_loss", task_loss)


def main_table(out: Path) -> str:
    return (out / "comparison.md").read_text().split("\n\n")[0]


# -- diverged fits --------------------------------------------------------------------------------

def test_a_diverging_teacher_fails_naming_its_job_epoch_and_batch(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    nan_loss_at(monkeypatch, batches_per_epoch() + 3, soft_targets=False)  # teacher: epoch 2, batch 3
    out = tmp_path / "run"
    bench_run(out, "--datasets", "demo-phases")
    message = ("teacher demo-phases/default/tiny seed 0: the training loss is not finite at epoch 2, batch 3 "
               "(lr 0.002, batch size 16): the model diverged")
    [failure] = (out / "jobs" / "teacher").glob("*.failed.json")
    assert message in json.loads(failure.read_text())["error"]
    missing = pd.read_csv(out / "missing.csv")
    assert sorted(missing["strategy"]) == ["best-val", "hard"]
    assert missing["reason"].str.contains(f"teacher seed 0 failed: DivergedError: {message}", regex=False).all()
    assert pd.read_csv(out / "results.csv").empty and not list((out / "jobs").glob("student/*"))
    table = (out / "comparison.md").read_text()
    assert table.startswith("**Missing results (2)**") and "±" not in table and message in table


def test_a_diverging_student_fails_naming_its_job_epoch_and_batch(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    nan_loss_at(monkeypatch, batches_per_epoch() + 3, soft_targets=True)  # best-val: epoch 2, batch 3
    out = tmp_path / "run"
    bench_run(out, "--datasets", "demo-phases")
    message = ("student demo-phases/default/tiny seed 0 (best-val): the training loss is not finite at epoch 2, "
               "batch 3 (lr 0.002, batch size 16): the model diverged")
    [failure] = (out / "jobs" / "student").glob("*.failed.json")
    assert message in json.loads(failure.read_text())["error"]
    missing = pd.read_csv(out / "missing.csv")
    assert missing[["strategy", "seed"]].values.tolist() == [["best-val", 0]]
    assert f"student failed: DivergedError: {message}" in missing["reason"].iloc[0]
    assert set(pd.read_csv(out / "results.csv")["strategy"]) == {"hard"}
    assert "| hard" in main_table(out) and "best-val" not in main_table(out)
    assert message in (out / "comparison.md").read_text()
    [log] = (out / "jobs" / "student").glob(".partial-*/history.json")  # the epoch before the divergence
    assert [r["epoch"] for r in json.loads(log.read_text())["epochs"]] == [1]


# -- student losses -------------------------------------------------------------------------------

def test_student_losses_are_logged_per_epoch_and_survive_an_interruption(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture) -> None:
    import harness.train.fit as training

    out = tmp_path / "run"
    students, real = out / "jobs" / "student", training.kill_point

    class Interrupted(Exception):
        pass

    def kill_point(point: str) -> None:  # the first batch after the student logged its first epoch
        if point == "batch" and list(students.glob(".partial-*/history.json")):
            raise Interrupted
        real(point)

    monkeypatch.setattr(training, "kill_point", kill_point)
    bench_run(out, "--datasets", "demo-phases", "--strategies", "hard")
    [log] = students.glob(".partial-*/history.json")
    before = json.loads(log.read_text())["epochs"]
    assert [r["epoch"] for r in before] == [1] and "(hard) epoch 1/2: loss" in capsys.readouterr().err

    monkeypatch.setattr(training, "kill_point", real)
    bench_run(out, "--datasets", "demo-phases", "--strategies", "hard")
    err = capsys.readouterr().err
    assert "(hard) epoch 2/2: loss" in err and "(hard) epoch 1/2" not in err  # resumed from its checkpoint
    [done] = students.glob("*/history.json")
    log = json.loads(done.read_text())
    assert log["seed"] == 0 and [r["epoch"] for r in log["epochs"]] == [1, 2]
    assert log["epochs"][0] == before[0] and np.isfinite(log["epochs"][1]["train_loss"])


def test_a_loss_log_reopened_keeps_its_epochs_and_replaces_a_retrained_one(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    log = LossLog(path, seed=3)
    for epoch, loss in [(1, 1.0), (2, 0.8), (3, 0.7)]:
        log.add(epoch, loss)
    LossLog(path, seed=3).add(2, 0.5)  # retrained after a kill in epoch 3: epoch 3 is trained again later
    assert json.loads(path.read_text()) == {"seed": 3, "epochs": [{"epoch": 1, "train_loss": 1.0},
                                                                  {"epoch": 2, "train_loss": 0.5}]}
    LossLog(path, seed=4).add(1, 2.0)  # another fit's file is not continued
    assert json.loads(path.read_text())["epochs"] == [{"epoch": 1, "train_loss": 2.0}]
    with pytest.raises(DivergedError, match="training loss of epoch 2 is nan"):
        LossLog(path, seed=4).add(2, float("nan"))


# -- degenerate students --------------------------------------------------------------------------

@pytest.mark.parametrize("task, probs, expected", [
    ("multiclass", [[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]], "predicts class 1 for every one of the 3 frames"),
    ("multiclass", [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], None),
    ("multilabel", [[0.3, 0.9], [0.3, 0.9 + SPREAD / 2]], "every class's probability is constant over the 2 frames"),
    ("multilabel", [[0.3, 0.9], [0.3, 0.9 + 10 * SPREAD]], None),  # class 1 still ranks the frames
    ("multilabel", [[0.3, 0.9]], None),  # one frame: nothing to compare
])
def test_degenerate_means_one_class_everywhere_or_constant_probabilities(task: str, probs: list, expected) -> None:
    reason = degenerate(np.array(probs, dtype=np.float64), task)
    assert reason == expected if expected is None else reason.startswith(expected)


@pytest.fixture(scope="module")
def degenerate_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The researcher's run: at lr 1000 the students saturate and answer one class everywhere."""
    out = tmp_path_factory.mktemp("degenerate") / "run"
    bench_run(out, "--datasets", "demo-phases", student_lr=1000)
    return out


def markdown_cells(table: str) -> dict[tuple[str, str], str]:
    """The cells of the main Markdown table, by (strategy, column)."""
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    return {(row[0], column): cell for row in rows for column, cell in zip(header[1:], row[1:])}


def test_a_degenerate_student_is_flagged_in_its_metrics_results_and_tables(degenerate_run: Path) -> None:
    primary = pd.read_csv(degenerate_run / "results.csv").query("primary")
    cells = markdown_cells(main_table(degenerate_run))
    note = (degenerate_run / "comparison.md").read_text().split("\n\n")[2]
    for row in primary.itertuples():
        student = degenerate_run / "jobs" / "student" / row.student_key
        reason = degenerate(np.load(student / "test_probs.npy"), "multiclass")
        assert json.loads((student / "metrics.json").read_text())["degenerate"]["test"] == reason
        assert row.degenerate == (reason is not None)
        column = f"{row.dataset} ({row.metric})"
        assert ("⚠" in cells[row.strategy, column]) == row.degenerate
        assert (f"{row.strategy} on {column}: 1 of 1 students" in note) == row.degenerate
    assert primary["degenerate"].any()  # at lr 1000 the students saturate
    assert note.startswith("⚠ degenerate students: ") and "not evidence; it still counts in the mean" in note
    assert r"$^{\dagger}$" in (degenerate_run / "comparison.tex").read_text()


def test_students_finished_before_the_flag_existed_are_flagged_from_their_predictions(degenerate_run: Path,
                                                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(degenerate_run, out)
    for path in (out / "jobs" / "student").glob("*/metrics.json"):
        metrics = json.loads(path.read_text())
        del metrics["degenerate"]
        path.write_text(json.dumps(metrics))
    (out / "results.csv").unlink()
    bench_run(out, "--datasets", "demo-phases", student_lr=1000)
    flags = ["student_key", "metric", "degenerate"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv")[flags],
                                  pd.read_csv(degenerate_run / "results.csv")[flags])


def test_a_run_refuses_a_teacher_history_with_a_nan_probability_file(degenerate_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(degenerate_run, out)
    teacher = next(d for d in (out / "jobs" / "teacher").glob("*/done.json")
                   if json.loads(d.read_text())["job"]["dataset"] == "demo-phases").parent
    corrupt = teacher / "history" / "probs" / "train_002.npy"
    probs = np.load(corrupt)
    probs[3, 1] = np.nan
    np.save(corrupt, probs)
    bench_run(out, "--datasets", "demo-phases", "--strategies", "hard,best-val,last", student_lr=1000)
    missing = pd.read_csv(out / "missing.csv")
    assert missing["strategy"].tolist() == ["last"]
    assert missing["reason"].iloc[0].startswith(f"strategy failed: DataError: {corrupt}: the probabilities of 1 "
                                                f"of {len(probs)} frames are not finite (first: frame 3)")
    assert "last" not in set(pd.read_csv(out / "results.csv")["strategy"])


# -- histories and soft labels --------------------------------------------------------------------

def test_a_history_with_non_finite_probabilities_or_losses_is_refused_naming_the_file(make_history) -> None:
    history = make_history(0, [0.4, 0.6, 0.8], [0.3, 0.5, 0.4])
    path = history.directory / "probs" / "val_002.npy"
    probs = np.load(path)
    probs[1, 0] = np.inf
    np.save(path, probs)
    reopened = TeacherHistory(history.directory)
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}: the probabilities of 1 of 4 frames are not finite"):
        reopened.val_probs(2)
    with pytest.raises(DataError, match="val_002.npy"):
        window_rule("val-nll").window(reopened)  # a window rule never sees the NaN
    meta_path = history.directory / "history.json"
    meta = json.loads(meta_path.read_text())
    meta["epochs"][0]["train_loss"] = float("nan")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=rf"{re.escape(str(meta_path))}: the training loss of epoch 1 is nan"):
        TeacherHistory(history.directory).train_loss(1)
    assert TeacherHistory(history.directory).train_loss(3) == pytest.approx(1 / 3)


def test_a_history_writer_refuses_non_finite_probabilities(tmp_path: Path) -> None:
    labels = np.array([0, 1, 1])
    writer = HistoryWriter(tmp_path, 0, "multiclass", "accuracy", labels, labels)
    probs = np.full((3, 2), 0.5, dtype=np.float32)
    bad = probs.copy()
    bad[2] = np.nan
    with pytest.raises(DivergedError, match=r"epoch 1: the probabilities of 1 of 3 frames are not finite"):
        writer.add_epoch(EpochRecord(1, 0.7, {"accuracy": 0.5}), bad, probs)
    assert not (tmp_path / "probs").exists() and json.loads((tmp_path / "history.json").read_text())["epochs"] == []


class OneCheckpoint(Strategy):
    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def select(self, teachers, seed):
        return Selection((Checkpoint(seed, 1),), temperature=self.temperature)


def test_soft_labels_that_are_not_finite_are_refused_naming_the_strategy(make_history) -> None:
    teachers = {0: make_history(0, [0.6, 0.8], [0.3, 0.5], labels=np.array([0, 2, 1, 2]), task="multiclass")}
    assert np.isfinite(soft_labels(OneCheckpoint(), teachers, 0)[1]).all()
    with np.errstate(all="ignore"), pytest.raises(
            ValueError, match=r"strategy OneCheckpoint made soft labels that are not finite on 4 of 4 frames "
                              r"\(first: frame 0\) from s0e1 T=1e-320"):
        soft_labels(OneCheckpoint(temperature=1e-320), teachers, 0)  # positive, but the logits overflow
