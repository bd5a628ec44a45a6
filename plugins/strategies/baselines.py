"""Baseline strategies: no distillation, the last checkpoint, the best-validation checkpoint."""

from __future__ import annotations

from harness.api import Checkpoint, Selection, Strategy, StrategySpec, Teachers, best_val_epoch, hookimpl


class Hard(Strategy):
    """No teacher: the student trains on the hard labels (the baseline every strategy must beat)."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection(note="hard labels")


class Last(Strategy):
    """The final checkpoint of the teacher of the same seed."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection((Checkpoint(seed, teachers[seed].epochs[-1]),), note="last epoch")


class BestVal(Strategy):
    """The checkpoint with the best validation score: the common choice of teacher."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection((Checkpoint(seed, best_val_epoch(teachers[seed])),), note="best validation score")


@hookimpl
def sdbench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("hard", "No distillation: the student learns from the hard labels", Hard),
        StrategySpec("last", "Teacher = the final checkpoint", Last),
        StrategySpec("best-val", "Teacher = the checkpoint with the best validation score", BestVal),
    ]
