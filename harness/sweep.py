"""The oracle sweep: one student per teacher epoch, to see which teacher really is the best one.

For one dataset, split, backbone and seed, the teacher is trained (or found in the run directory), then a
student is trained on the soft labels of every one of its epochs. The sweep's table has, per teacher epoch,
the teacher's training loss and validation score, its soft-label diagnostics, and the student's validation
and test scores; it marks the best-validation teacher, the best teacher (the epoch whose student scores
best on the test videos: the oracle, which no strategy may look at) and the epochs of the automatic
intermediate window. Students are ordinary student jobs of the run directory, shared with ``bench run``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.errors import ConfigError, SdbenchError
from harness.history import TeacherHistory
from harness.runner import Cell, Runner
from harness.selection import WindowRule, best_val_epoch
from harness.strategy import Checkpoint, Selection, Strategy, Teachers

COLUMNS = ["dataset", "split", "backbone", "seed", "metric", "epoch", "teacher_train_loss", "teacher_val",
           "fit_confidence", "mean_max_prob", "mean_entropy", "ece", "student_val", "student_test",
           "in_window", "best_val", "best_teacher"]


class TeacherEpoch(Strategy):
    """The soft labels of one given epoch of the student's own teacher."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection((Checkpoint(seed, self.epoch),), note=f"teacher epoch {self.epoch}")


@dataclass(frozen=True)
class SweepTarget:
    dataset: str
    split: str | None
    backbone: str
    seed: int


def _cell(runner: Runner, target: SweepTarget) -> Cell:
    data = runner.dataset(target.dataset)
    runner.ready(data, data.dataset.availability())
    split = target.split or next(iter(data.splits))
    if split not in data.splits:
        raise ConfigError(f"dataset '{target.dataset}' has no split '{split}'; it has {', '.join(data.splits)}")
    return runner.cell(target.dataset, split, target.backbone)


def sweep(runner: Runner, target: SweepTarget, window: WindowRule) -> pd.DataFrame:
    """Train what is missing and return the sweep's table (columns :data:`COLUMNS`, scores as fractions)."""
    cell = _cell(runner, target)
    runner.check_backbones([target.backbone])
    error = runner.prepare_frames(cell.data)
    if error:
        raise SdbenchError(f"{target.dataset}: {error}")
    teacher = runner.teacher_job(cell, target.seed)
    outcome = runner.schedule([teacher])[teacher.key]
    if not outcome.ok:
        raise SdbenchError(f"the teacher of the sweep failed: {outcome.error}")
    history = TeacherHistory(runner.store.path("teacher", teacher.key) / "history")
    teachers = {target.seed: (teacher.key, history)}
    students = {}
    for epoch in history.epochs:
        key, digest, _ = runner.teaching("sweep-epoch", TeacherEpoch(epoch), target.seed, teachers,
                                            params={"epoch": epoch})
        students[epoch] = runner.student_job(cell, target.seed, key, digest, f"teacher epoch {epoch}")
    outcomes = runner.schedule(students.values())
    failed = [f"epoch {e}: {outcomes[job.key].error}" for e, job in students.items() if not outcomes[job.key].ok]
    if failed:
        raise SdbenchError("students of the sweep failed: " + "; ".join(failed))
    return _table(runner, cell, target, history, students, window)


def _table(runner: Runner, cell: Cell, target: SweepTarget, history: TeacherHistory, students: dict,
           window: WindowRule) -> pd.DataFrame:
    metric = history.primary_metric
    inside = set(window.window(history))
    best_val = best_val_epoch(history)
    rows = []
    for epoch, job in students.items():
        scores = json.loads((runner.store.path("student", job.key) / "metrics.json").read_text())
        rows.append({"dataset": cell.data.name, "split": cell.split.name, "backbone": cell.backbone,
                     "seed": target.seed, "metric": metric, "epoch": epoch,
                     "teacher_train_loss": history.train_loss(epoch), "teacher_val": history.val_score(epoch),
                     "fit_confidence": history.fit_confidence(epoch), **history.diagnostics(epoch),
                     "student_val": scores["val"][metric], "student_test": scores["test"][metric],
                     "in_window": epoch in inside, "best_val": epoch == best_val})
    table = pd.DataFrame(rows)
    best_teacher = table.loc[table["student_test"].idxmax(), "epoch"]
    table["best_teacher"] = table["epoch"] == best_teacher
    return table[COLUMNS]


def sweep_name(target: SweepTarget, table: pd.DataFrame) -> str:
    return f"{target.dataset}-{table['split'].iloc[0]}-{target.backbone}-seed{target.seed}".replace(":", "_")


def write_sweep(table: pd.DataFrame, directory: Path, name: str) -> list[Path]:
    """Write ``<name>.csv`` and the teacher-epoch figure ``<name>.png`` and ``.svg``; return the paths."""
    from harness.atomic import write_text
    from harness.sweep_figure import draw

    directory = Path(directory)
    csv = directory / f"{name}.csv"
    write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    return [csv, *draw(table, directory / name)]
