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

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence

import pandas as pd

from harness.errors import ConfigError
from harness.science.selection import best_val_epoch
from harness.science.strategy import Checkpoint, Selection, Strategy, Teachers
from harness.train.history import TeacherHistory

STUDENT_SEED_STRIDE = 1000
BASELINES = ("best-val", "last")
DEFAULT_STUDENT_SEEDS = 3

COLUMNS = ["dataset", "split", "backbone", "seed", "teacher_key", "metric", "epoch", "teacher_train_loss",
           "teacher_val", "fit_confidence", "mean_max_prob", "mean_entropy", "ece", "students", "student_val",
           "student_val_std", "student_test", "student_test_std", "in_window", "best_val", "last", "best_teacher"]
"""The fixed columns of a sweep table (``seed`` is the teacher's seed); the per-seed columns follow."""

SEED_COLUMN = re.compile(r"student_(val|test)_seed(\d+)$")


class HasWindow(Protocol):
    """What the sweep needs of a window rule (:class:`harness.science.windows.WindowRule` or any look-alike)."""

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


def swept_epochs(history: TeacherHistory, epochs: Sequence[int] | None = None,
                 rules: Iterable[HasWindow] = ()) -> list[int]:
    """``epochs`` (default: all of them) plus the best-validation and the last epoch of ``history`` and the
    ``it`` choice (the best-validation epoch in the window) of every rule in ``rules``: the epochs that the
    baselines and the rules pick (:func:`choices`), so that their regret never misses for
    want of a swept epoch. A rule that cannot choose adds nothing (the regret table reports why)."""
    if epochs is None:
        return list(history.epochs)
    unknown = sorted(set(epochs) - set(history.epochs))
    if unknown:
        raise ConfigError(f"--epochs {unknown} are not epochs of the teacher (it has epochs {history.epochs})")
    picked = choices(history, {str(i): rule for i, rule in enumerate(rules)})  # and the baselines
    chosen = {epoch for epoch in picked.values() if not isinstance(epoch, str)}
    return sorted(set(epochs) | chosen)


def sweep_name(target: SweepTarget, table: pd.DataFrame) -> str:
    return f"{target.dataset}-{table['split'].iloc[0]}-{target.backbone}-seed{target.seed}".replace(":", "_")


def choices(history: TeacherHistory, rules: Mapping[str, HasWindow]) -> dict[str, int | str]:
    """The teacher epoch each rule (its ``it`` choice) and each baseline picks from ``history``; a rule that
    cannot choose gives the reason as a string instead."""
    chosen: dict[str, int | str] = {}
    for name, rule in rules.items():
        try:
            chosen[name] = best_val_epoch(history, list(rule.window(history)))
        except (ValueError, KeyError) as exc:
            chosen[name] = f"the rule failed: {exc}"
    chosen["best-val"] = best_val_epoch(history)
    chosen["last"] = history.epochs[-1]
    return chosen
