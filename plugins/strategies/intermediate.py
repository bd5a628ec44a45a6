"""The paper's strategies: intermediate teacher (IT) and intermediate ensembles across epochs (IEE) and
across epochs and seeds (IESE). The window is chosen by :mod:`harness.selection`; its parameters
(``low``, ``high``, ``min_val_ratio``, ``epochs``) come from ``strategy_params.<name>`` in the config.
"""

from __future__ import annotations

from typing import Any

from harness.plugins import hookimpl
from harness.selection import WindowRule, best_val_epoch
from harness.specs import StrategySpec
from harness.strategy import Checkpoint, Selection, Strategy, Teachers


class _WindowStrategy(Strategy):
    def __init__(self, **params: Any) -> None:
        self.rule = WindowRule.from_params(**params)


class IntermediateTeacher(_WindowStrategy):
    """The single best checkpoint (by validation score) inside the intermediate window."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        epoch = best_val_epoch(teachers[seed], self.rule.window(teachers[seed]))
        return Selection((Checkpoint(seed, epoch),), note=f"best val in window: {self.rule.describe()}")


class IntermediateEpochsEnsemble(_WindowStrategy):
    """Mean of the probabilities of every checkpoint in the window of the teacher of the same seed."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        epochs = self.rule.window(teachers[seed])
        return Selection(tuple(Checkpoint(seed, e) for e in epochs), note=f"window: {self.rule.describe()}")


class IntermediateEpochsSeedsEnsemble(_WindowStrategy):
    """Mean over every teacher seed of the probabilities of every checkpoint in that seed's window."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection(self.rule.across_seeds(teachers), note=f"all seeds, window: {self.rule.describe()}")


@hookimpl
def sdbench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("it", "Intermediate teacher: the best-validation checkpoint inside the intermediate window",
                     IntermediateTeacher),
        StrategySpec("iee", "Intermediate epochs ensemble: mean of the window's checkpoints of one teacher",
                     IntermediateEpochsEnsemble),
        StrategySpec("iese", "Intermediate epochs and seeds ensemble: mean of the window's checkpoints of all seeds",
                     IntermediateEpochsSeedsEnsemble),
    ]
