"""Rules that pick teacher epochs from a teacher's history: the best validation score, and the intermediate
window of epochs that are neither under- nor over-confident.

They are the core's, not a strategy plugin's, because the sweep figure marks both (the best-validation
epoch and the shaded window) whichever strategies are installed; the strategy plugins build on them.

The window rule. For each epoch of a teacher run, take its eval-mode probabilities on its own training frames and
measure its *fit confidence*: the mean probability it gives to the true labels (the positive entries for
multi-label tasks, the annotated class for multi-class tasks). An under-fitting teacher gives its true labels
little mass (0.3-0.4 in the paper's example); an over-fitting teacher reproduces its hard labels, noise
included (about 0.95). The window is the set of epochs with ``low <= confidence <= high`` whose validation
score is at least ``min_val_ratio`` times the run's best validation score (which drops epochs that are
confident but still poor). When no epoch qualifies, the window is the single epoch whose confidence is
closest to the band. ``epochs`` overrides the rule with an explicit list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


from harness.history import TeacherHistory
from harness.strategy import Checkpoint, Teachers


def best_val_epoch(history: TeacherHistory, epochs: list[int] | None = None) -> int:
    """The epoch of ``history`` (among ``epochs`` if given) with the best primary validation score (the
    earliest on ties)."""
    candidates = history.epochs if epochs is None else epochs
    return max(candidates, key=lambda e: (history.val_score(e), -e))


@dataclass(frozen=True)
class WindowRule:
    low: float = 0.5
    high: float = 0.85
    min_val_ratio: float = 0.9
    epochs: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"window bounds must satisfy 0 <= low <= high <= 1, got low={self.low} high={self.high}")

    @classmethod
    def from_params(cls, low: float = 0.5, high: float = 0.85, min_val_ratio: float = 0.9,
                    epochs: Sequence[int] | None = None) -> "WindowRule":
        return cls(float(low), float(high), float(min_val_ratio), tuple(int(e) for e in epochs) if epochs else None)

    def describe(self) -> str:
        if self.epochs:
            return f"epochs {list(self.epochs)}"
        return f"fit confidence in [{self.low}, {self.high}], val >= {self.min_val_ratio} x best"

    def window(self, history: TeacherHistory) -> list[int]:
        """The epochs of ``history`` inside the intermediate window, in order; never empty."""
        if self.epochs:
            missing = sorted(set(self.epochs) - set(history.epochs))
            if missing:
                raise ValueError(f"window epochs {missing} are not in teacher seed {history.seed} "
                                 f"(it has epochs {history.epochs})")
            return sorted(self.epochs)
        confidence = {e: history.fit_confidence(e) for e in history.epochs}
        best_val = max(history.val_score(e) for e in history.epochs)
        inside = [e for e in history.epochs
                  if self.low <= confidence[e] <= self.high and history.val_score(e) >= self.min_val_ratio * best_val]
        if inside:
            return inside

        def distance(e: int) -> float:
            return max(self.low - confidence[e], confidence[e] - self.high, 0.0)

        return [min(history.epochs, key=distance)]

    def across_seeds(self, teachers: Teachers) -> tuple[Checkpoint, ...]:
        """Every teacher seed's window, in seed then epoch order: the checkpoints of IESE and its variants."""
        return tuple(Checkpoint(s, e) for s in sorted(teachers) for e in self.window(teachers[s]))
