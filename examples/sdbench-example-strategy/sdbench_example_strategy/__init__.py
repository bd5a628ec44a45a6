"""Middle-third ensemble: average the checkpoints of the middle third of teacher training.

A complete third-party strategy: no torch, no GPU; the harness hands it the teacher histories.
"""

from harness.api import Checkpoint, Selection, Strategy, StrategySpec, hookimpl


class MiddleThird(Strategy):
    """Mean of the probabilities of the epochs in the middle third of the teacher run of the same seed."""

    def __init__(self, fraction: float = 1 / 3) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def select(self, teachers, seed):
        epochs = teachers[seed].epochs
        width = max(1, round(len(epochs) * self.fraction))
        start = (len(epochs) - width) // 2
        chosen = epochs[start:start + width]
        return Selection(tuple(Checkpoint(seed, e) for e in chosen), note=f"middle {len(chosen)} epochs")


@hookimpl
def sdbench_strategies():
    return [StrategySpec("middle-third", "Mean of the middle third of the teacher's epochs", MiddleThird)]
