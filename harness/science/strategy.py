"""The strategy API: choose teacher checkpoints, combine their probabilities into soft labels.

A strategy is a pure function of the teacher histories of one cell (dataset x split x backbone), keyed by
teacher seed. It needs numpy only, so it can be written and tested without a GPU or torch::

    class LastTwo(Strategy):
        def select(self, teachers, seed):
            epochs = teachers[seed].epochs[-2:]
            return Selection(tuple(Checkpoint(seed, e) for e in epochs), note="last two epochs")

An empty selection means "no distillation": the student trains on the hard labels. A selection may also
carry a ``temperature`` that rescales the combined probabilities in logit space (see
:mod:`harness.metrics.calibration`): below 1 it sharpens the soft labels, above 1 it softens them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from harness.metrics.calibration import apply_temperature
from harness.train.history import TeacherHistory

Teachers = Mapping[int, TeacherHistory]
"""The teacher histories of one cell, by seed. Every history covers the same training frames."""


@dataclass(frozen=True, order=True)
class Checkpoint:
    seed: int
    epoch: int

    def __str__(self) -> str:
        return f"s{self.seed}e{self.epoch}"


@dataclass(frozen=True)
class Selection:
    """The checkpoints whose training-frame probabilities make the soft labels, with optional weights, and
    the temperature applied to their combination (1: none)."""

    checkpoints: tuple[Checkpoint, ...] = ()
    weights: tuple[float, ...] | None = None
    note: str = ""
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.checkpoints):
            raise ValueError(f"{len(self.weights)} weights for {len(self.checkpoints)} checkpoints")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def is_hard(self) -> bool:
        return not self.checkpoints

    def describe(self) -> str:
        if self.is_hard:
            return "hard labels"
        described = " ".join(str(c) for c in self.checkpoints)
        return described if self.temperature == 1.0 else f"{described} T={self.temperature:.3g}"


class Strategy(ABC):
    """Subclass and implement :meth:`select`; override :meth:`combine` to combine other than by mean, or
    :meth:`combine_for` when the combination depends on the task."""

    @abstractmethod
    def select(self, teachers: Teachers, seed: int) -> Selection:
        """The checkpoints that teach the student of ``seed``."""

    def combine(self, probs: Sequence[np.ndarray], weights: Sequence[float] | None) -> np.ndarray:
        """Weighted mean of probabilities (never of logits). Accumulates in float64."""
        total = np.zeros(probs[0].shape, dtype=np.float64)
        weights = [1.0] * len(probs) if weights is None else list(weights)
        for p, w in zip(probs, weights):
            total += w * np.asarray(p, dtype=np.float64)
        return (total / sum(weights)).astype(np.float32)

    def combine_for(self, task: str, probs: Sequence[np.ndarray], weights: Sequence[float] | None) -> np.ndarray:
        """The combination for ``task`` (``"multilabel"`` or ``"multiclass"``), which :func:`soft_labels`
        calls: :meth:`combine` unless overridden (averaging logits, for one, needs the task)."""
        return self.combine(probs, weights)

    def cache_identity(self) -> Mapping[str, Any]:
        """What decides this strategy's soft labels besides its name, config parameters and version, as a
        JSON-serialisable mapping that the soft-label cache key hashes: for example the resolved window rule
        of a window strategy, whose default may change between releases. Default: nothing."""
        return {}


def soft_labels(strategy: Strategy, teachers: Teachers, seed: int) -> tuple[Selection, np.ndarray | None]:
    """Run ``strategy`` for the student of ``seed``: its selection, and the soft labels (None for hard).

    Soft labels are always finite: non-finite ones (a bug in the strategy, e.g. a temperature so small that
    the logits overflow) raise a ValueError naming the strategy, and the run reports them as missing."""
    selection = strategy.select(teachers, seed)
    if not isinstance(selection, Selection):
        raise TypeError(f"{type(strategy).__name__}.select returned {selection!r}, expected a Selection")
    if selection.is_hard:
        return selection, None
    for checkpoint in selection.checkpoints:
        if checkpoint.seed not in teachers:
            raise ValueError(f"{type(strategy).__name__} selected {checkpoint}, but there is no teacher "
                             f"of seed {checkpoint.seed} (seeds: {sorted(teachers)})")
    probs = [teachers[c.seed].train_probs(c.epoch) for c in selection.checkpoints]
    if len({p.shape for p in probs}) != 1:
        raise ValueError(f"selected checkpoints have differing shapes {[p.shape for p in probs]}")
    task = teachers[selection.checkpoints[0].seed].task
    combined = strategy.combine_for(task, probs, selection.weights)
    if selection.temperature != 1.0:
        combined = apply_temperature(combined, selection.temperature, task).astype(np.float32)
    name = type(strategy).__name__
    if combined.shape != probs[0].shape:
        raise ValueError(f"{name}.combine returned an array of shape {combined.shape}, expected {probs[0].shape}")
    rows = np.flatnonzero(~np.isfinite(combined).all(axis=1))
    if len(rows):
        raise ValueError(f"strategy {name} made soft labels that are not finite on {len(rows)} of {len(combined)} "
                         f"frames (first: frame {rows[0]}) from {selection.describe()}: a bug in its combination "
                         "or its temperature")
    return selection, combined
