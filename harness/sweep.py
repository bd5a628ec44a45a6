"""The oracle sweep: students trained per teacher epoch, to see which teacher really is the best one.

For one dataset, split, backbone and teacher seed, the teacher is trained (or found in the run directory),
then K students (``student_seeds``) are trained on the soft labels of every swept epoch. Student ``k`` has
the seed :func:`student_seed` ``= teacher seed + 1000 k``: student 0 keeps the teacher's seed, so it is the
very student ``bench run`` trains for that teacher seed (and earlier single-seed sweeps), and the others
are new seeds of the same soft labels. ``epochs`` restricts the sweep to some teacher epochs; the
best-validation epoch and the last epoch are always swept (they are what the ``best-val`` and ``last``
baselines pick, whose regrets every rule's is compared with), and so is the choice of the window and of
every rule passed in.

The sweep's table has, per swept teacher epoch, the teacher's training loss and validation score, its
soft-label diagnostics, and the students' validation and test scores: their mean, their standard deviation
over the student seeds (sample std, 0 with one seed) and every seed's score (``student_test_seed<S>``).
It marks the best-validation epoch, the last epoch, the best teacher (the epoch whose students score best
*on average* on the test videos: the oracle, which no strategy may look at) and the epochs of the
automatic intermediate window. ``teacher_key`` names the teacher job, so that a report can reopen its
history. Students are ordinary student jobs of the run directory, shared with ``bench run``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

import pandas as pd

from harness.errors import ConfigError, SdbenchError
from harness.history import TeacherHistory
from harness.selection import best_val_epoch
from harness.strategy import Checkpoint, Selection, Strategy, Teachers

if TYPE_CHECKING:  # the runner imports torch; the table helpers here must not
    from harness.runner import Cell, Runner

STUDENT_SEED_STRIDE = 1000
DEFAULT_STUDENT_SEEDS = 3

COLUMNS = ["dataset", "split", "backbone", "seed", "teacher_key", "metric", "epoch", "teacher_train_loss",
           "teacher_val", "fit_confidence", "mean_max_prob", "mean_entropy", "ece", "students", "student_val",
           "student_val_std", "student_test", "student_test_std", "in_window", "best_val", "last", "best_teacher"]
"""The fixed columns of a sweep table (``seed`` is the teacher's seed); the per-seed columns follow."""

SEED_COLUMN = re.compile(r"student_(val|test)_seed(\d+)$")


class HasWindow(Protocol):
    """What the sweep needs of a window rule (:class:`harness.windows.WindowRule` or any look-alike)."""

    def window(self, history: TeacherHistory) -> list[int]: ...


def student_seed(teacher_seed: int, k: int) -> int:
    """The seed of the ``k``-th student of a teacher epoch: ``teacher_seed + 1000 k`` (k = 0: the teacher's)."""
    return teacher_seed + STUDENT_SEED_STRIDE * k


def columns(student_seeds: Sequence[int]) -> list[str]:
    """Every column of a sweep table whose students have ``student_seeds``."""
    return COLUMNS + [f"student_{part}_seed{s}" for part in ("val", "test") for s in student_seeds]


def seed_columns(table: pd.DataFrame, part: str = "test") -> dict[int, str]:
    """The per-seed score columns of ``table`` for ``part`` (val or test), by student seed, in seed order."""
    found = {int(m[2]): name for name in table.columns if (m := SEED_COLUMN.match(name)) and m[1] == part}
    return dict(sorted(found.items()))


def parse_epochs(text: str) -> tuple[int, ...]:
    """Teacher epochs from ``2,4,6``, ``1-10`` (inclusive), ``1-10:2`` (1, 3, ..., 9) or a comma-separated mix."""
    epochs: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        found = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not found:
            raise ConfigError(f"--epochs '{text}': cannot read '{part}'; expected comma-separated epochs and "
                              "ranges, e.g. 2,4,6 or 1-10 or 1-10:2")
        start = int(found[1])
        end = int(found[2]) if found[2] else start
        step = int(found[3]) if found[3] else 1
        if start < 1 or end < start or step < 1:
            raise ConfigError(f"--epochs '{text}': '{part}' is not a range of epochs; expected EPOCH, START-END "
                              "or START-END:STEP with 1 <= START <= END and STEP >= 1")
        epochs.update(range(start, end + 1, step))
    return tuple(sorted(epochs))


class TeacherEpoch(Strategy):
    """The soft labels of one given epoch of the teacher of the seed the selection is made for."""

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
    """The teacher's seed."""


def _cell(runner: Runner, target: SweepTarget) -> Cell:
    data = runner.dataset(target.dataset)
    runner.ready(data, data.dataset.availability())
    split = target.split or next(iter(data.splits))
    if split not in data.splits:
        raise ConfigError(f"dataset '{target.dataset}' has no split '{split}'; it has {', '.join(data.splits)}")
    return runner.cell(target.dataset, split, target.backbone)


def swept_epochs(history: TeacherHistory, epochs: Sequence[int] | None = None,
                 rules: Iterable[HasWindow] = ()) -> list[int]:
    """``epochs`` (default: all of them) plus the best-validation and the last epoch of ``history`` and the
    ``it`` choice (the best-validation epoch in the window) of every rule in ``rules``: the epochs that the
    baselines and the rules pick (:func:`harness.regret.choices`), so that their regret never misses for
    want of a swept epoch. A rule that cannot choose adds nothing (the regret table reports why)."""
    from harness.regret import choices  # it imports this module

    if epochs is None:
        return list(history.epochs)
    unknown = sorted(set(epochs) - set(history.epochs))
    if unknown:
        raise ConfigError(f"--epochs {unknown} are not epochs of the teacher (it has epochs {history.epochs})")
    picked = choices(history, {str(i): rule for i, rule in enumerate(rules)})  # and the baselines
    chosen = {epoch for epoch in picked.values() if not isinstance(epoch, str)}
    return sorted(set(epochs) | chosen)


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
    error = runner.prepare_frames(cell.data)
    if error:
        raise SdbenchError(f"{target.dataset}: {error}")
    teacher = runner.teacher_job(cell, target.seed)
    outcome = runner.schedule([teacher])[teacher.key]
    if not outcome.ok:
        raise SdbenchError(f"the teacher of the sweep failed: {outcome.error}")
    history = TeacherHistory(runner.store.path("teacher", teacher.key) / "history")
    try:
        inside = set(window.window(history))
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"the sweep's window cannot choose from the teacher of seed {target.seed}: "
                          f"{exc}") from None
    teachers = {target.seed: (teacher.key, history)}
    seeds = [student_seed(target.seed, k) for k in range(student_seeds)]
    students = {}
    for epoch in swept_epochs(history, epochs, [window, *rules]):
        # The soft labels are the teacher's (keyed by its seed), whichever student seed learns from them.
        key, digest, _ = runner.teaching("sweep-epoch", TeacherEpoch(epoch), target.seed, teachers,
                                            params={"epoch": epoch})
        for seed in seeds:
            students[epoch, seed] = runner.student_job(cell, seed, key, digest, f"teacher epoch {epoch}")
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
