"""The paper's strategies: intermediate teacher (IT) and intermediate ensembles across epochs (IEE) and
across epochs and seeds (IESE). The window is chosen by a window rule (:mod:`harness.science.windows`, the built-in
rules in :mod:`plugins.strategies.windows`): ``strategy_params.<name>.window`` names it (``window: val-nll``)
or gives it with parameters (``window: {name: band, low: 0.4}``); without it, the legacy flat parameters
``low``, ``high``, ``min_val_ratio`` (the ``band`` rule) or ``epochs`` (the ``epochs`` rule) still work, and
with none of them the rule is :data:`harness.science.windows.DEFAULT_WINDOW`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from harness.api import (Checkpoint, Selection, Strategy, StrategySpec, Teachers, best_val_epoch, hookimpl,
                         strategy_window)


class _WindowStrategy(Strategy):
    def __init__(self, window: str | Mapping[str, Any] | None = None, *, low: float | None = None,
                 high: float | None = None, min_val_ratio: float | None = None,
                 epochs: Sequence[int] | None = None) -> None:
        self.rule = strategy_window(window, low=low, high=high, min_val_ratio=min_val_ratio, epochs=epochs)

    def cache_identity(self) -> Mapping[str, Any]:
        return {"window": self.rule.key()}


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
