"""``bench sweep``: the oracle sweep (:mod:`harness.science.sweep`) run: the teacher, then K students per swept
teacher epoch, scheduled like any run's jobs and shared with ``bench run``, and the sweep's table."""

from __future__ import annotations

import json
from typing import Iterable, Sequence

import pandas as pd

from harness.errors import ConfigError, SdbenchError
from harness.experiments.run import Runner
from harness.runs.jobs import build_frames
from harness.runs.plan import Cell
from harness.science.selection import best_val_epoch
from harness.science.sweep import (DEFAULT_STUDENT_SEEDS, HasWindow, SweepTarget, TeacherEpoch, columns, student_seed,
                                   swept_epochs)
from harness.train.history import TeacherHistory


def _cell(runner: Runner, target: SweepTarget) -> Cell:
    data = runner.plan.dataset(target.dataset)
    runner.plan.ready(data, data.dataset.availability())
    split = target.split or next(iter(data.splits))
    if split not in data.splits:
        raise ConfigError(f"dataset '{target.dataset}' has no split '{split}'; it has {', '.join(data.splits)}")
    return runner.plan.cell(target.dataset, split, target.backbone)


def sweep(runner: Runner, target: SweepTarget, window: HasWindow, student_seeds: int = DEFAULT_STUDENT_SEEDS,
          epochs: Sequence[int] | None = None, rules: Iterable[HasWindow] = ()) -> pd.DataFrame:
    """Train what is missing and return the sweep's table (columns :func:`columns`, scores as fractions).

    ``window`` is anything with a ``window(history) -> list[int]`` method (a window rule); its epochs are
    marked ``in_window``; one that cannot choose from the teacher's history is an error before any student
    trains. With an ``epochs`` subset, the choices of ``window`` and of every rule in ``rules`` are swept too
    (see :func:`swept_epochs`)."""
    if student_seeds < 1:
        raise ConfigError(f"--student-seeds must be >= 1, got {student_seeds}")
    cell = _cell(runner, target)
    runner.check_backbones([target.backbone])
    error = build_frames(runner.context, cell.data)
    if error:
        raise SdbenchError(f"{target.dataset}: {error}")
    teacher = runner.plan.teacher_job(cell, target.seed)
    outcome = runner.schedule([teacher])[teacher.key]
    if not outcome.ok:
        raise SdbenchError(f"the teacher of the sweep failed: {outcome.error}")
    teachers = runner.teachers_of([teacher])
    history = teachers[target.seed][1]
    try:
        inside = set(window.window(history))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"the sweep's window cannot choose from the teacher of seed {target.seed}: "
                          f"{exc}") from None
    seeds = [student_seed(target.seed, k) for k in range(student_seeds)]
    students = {}
    for epoch in swept_epochs(history, epochs, [window, *rules]):
        # The soft labels are the teacher's (keyed by its seed), whichever student seed learns from them.
        key, digest, _ = runner.soft_labels("sweep-epoch", TeacherEpoch(epoch), target.seed, teachers,
                                            params={"epoch": epoch})
        for seed in seeds:
            students[epoch, seed] = runner.plan.student_job(cell, seed, key, digest, f"teacher epoch {epoch}")
    outcomes = runner.schedule(students.values())
    failed = [f"epoch {e} student seed {s}: {outcomes[job.key].error}" for (e, s), job in students.items()
              if not outcomes[job.key].ok]
    if failed:
        raise SdbenchError("students of the sweep failed: " + "; ".join(failed))
    return _table(runner, cell, target, teacher.key, history, students, seeds, inside)


def _table(runner: Runner, cell: Cell, target: SweepTarget, teacher_key: str, history: TeacherHistory,
           students: dict, seeds: list[int], inside: set[int]) -> pd.DataFrame:
    metric = history.primary_metric
    best_val, last = best_val_epoch(history), history.epochs[-1]
    rows = []
    for epoch in dict.fromkeys(e for e, _ in students):
        row = {"dataset": cell.data.name, "split": cell.split.name, "backbone": cell.backbone,
               "seed": target.seed, "teacher_key": teacher_key, "metric": metric, "epoch": epoch,
               "teacher_train_loss": history.train_loss(epoch), "teacher_val": history.val_score(epoch),
               "fit_confidence": history.fit_confidence(epoch), **history.diagnostics(epoch),
               "students": len(seeds), "in_window": epoch in inside, "best_val": epoch == best_val,
               "last": epoch == last}
        for seed in seeds:
            path = runner.store.path("student", students[epoch, seed].key) / "metrics.json"
            scores = json.loads(path.read_text())
            for part in ("val", "test"):
                row[f"student_{part}_seed{seed}"] = scores[part][metric]
        for part in ("val", "test"):
            values = pd.Series([row[f"student_{part}_seed{s}"] for s in seeds], dtype=float)
            row[f"student_{part}"] = values.mean()
            row[f"student_{part}_std"] = values.std() if len(values) > 1 else 0.0
        rows.append(row)
    table = pd.DataFrame(rows)
    best_teacher = table.loc[table["student_test"].idxmax(), "epoch"]  # the earliest on ties
    table["best_teacher"] = table["epoch"] == best_teacher
    return table[columns(seeds)]
