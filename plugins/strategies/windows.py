"""Built-in window rules: which epochs of one teacher run are intermediate (see :mod:`harness.science.windows`).

``band`` and ``epochs`` are the original rule and its explicit override; ``fit-relative``, ``loss-knee``,
``val-nll`` and ``generalisation-gap`` read the run's own trajectory instead of absolute thresholds. The
picture they share: a teacher on noisy labels first learns the clean signal (training loss falls fast, the
validation NLL falls), then memorises the noisy training labels (its fit confidence on its own training
frames rises towards 1, the training loss towards 0, the validation NLL rises again). Every rule is a pure,
deterministic function of one history, returns a sorted non-empty subset of its epochs, and handles 1- and
2-epoch runs, constant curves and undefined (NaN) values.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from harness.api import TeacherHistory, WindowRule, WindowRuleSpec, best_val_epoch, hookimpl, normalise


def _fraction(name: str, value: Any) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _val_floor(history: TeacherHistory, ratio: float) -> float:
    scores = [history.val_score(e) for e in history.epochs]
    finite = [s for s in scores if math.isfinite(s)]
    return ratio * max(finite) if finite else -math.inf


def _closest(values: np.ndarray, epochs: list[int], low: float, high: float) -> list[int]:
    """The epoch whose value is closest to [low, high] (the earliest on ties, NaN farthest), as a window."""
    distance = [max(low - v, v - high, 0.0) if math.isfinite(v) else math.inf for v in values]
    return [epochs[int(np.argmin(distance))]]


class Band(WindowRule):
    """The paper's rule: the epochs whose fit confidence (mean probability the teacher gives to its own true
    training labels) is in ``[low, high]`` (default 0.5-0.85: an under-fitting teacher gives its labels
    little mass, a memorising one about 0.95) and whose validation score is at least ``min_val_ratio``
    (0.9) x the run's best. If no epoch qualifies: the epoch whose fit confidence is closest to the band."""

    name, version = "band", 1

    def __init__(self, low: float = 0.5, high: float = 0.85, min_val_ratio: float = 0.9) -> None:
        self.low, self.high, self.min_val_ratio = float(low), float(high), float(min_val_ratio)
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"window bounds must satisfy 0 <= low <= high <= 1, got low={self.low} high={self.high}")
        if not math.isfinite(self.min_val_ratio):
            raise ValueError(f"min_val_ratio must be finite, got {self.min_val_ratio}")

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "min_val_ratio": self.min_val_ratio}

    def describe(self) -> str:
        return f"band: fit confidence in [{self.low}, {self.high}], val >= {self.min_val_ratio} x best"

    def window(self, history: TeacherHistory) -> list[int]:
        epochs = history.epochs
        confidence = np.array([history.fit_confidence(e) for e in epochs], dtype=np.float64)
        floor = _val_floor(history, self.min_val_ratio)
        inside = [e for e, c in zip(epochs, confidence)
                  if self.low <= c <= self.high and history.val_score(e) >= floor]
        return inside or _closest(confidence, epochs, self.low, self.high)


class Epochs(WindowRule):
    """An explicit list of epochs, for runs whose good teacher epochs are known (or to reproduce a paper's
    choice). Every listed epoch must exist in the history: a missing one is an error, not a silent drop."""

    name, version = "epochs", 1

    def __init__(self, epochs: Sequence[int]) -> None:
        if isinstance(epochs, (str, bytes)) or not hasattr(epochs, "__iter__"):
            raise ValueError(f"epochs must be a list of epoch numbers, got {epochs!r}")
        values = list(epochs)
        if not values or any(isinstance(e, bool) or int(e) != e or e < 1 for e in values):
            raise ValueError(f"epochs must be a non-empty list of positive integers, got {values!r}")
        self.epochs = tuple(sorted({int(e) for e in values}))

    def params(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs)}

    def describe(self) -> str:
        return f"epochs {list(self.epochs)}"

    def window(self, history: TeacherHistory) -> list[int]:
        missing = sorted(set(self.epochs) - set(history.epochs))
        if missing:
            raise ValueError(f"window epochs {missing} are not in teacher seed {history.seed} "
                             f"(it has epochs {history.epochs})")
        return list(self.epochs)


class FitRelative(WindowRule):
    """The band rule relative to the run's own trajectory: rescale the fit-confidence curve to [0, 1] by its
    own min and max over the run (a constant curve maps to 0.5) and take the epochs whose rescaled confidence
    is in ``[low, high]`` (default 0.25-0.75): past the under-fitting start, before the climb to
    memorisation, whatever the absolute confidences of this dataset and backbone. If none qualifies (a jump
    across the band): the epoch closest to it."""

    name, version = "fit-relative", 1

    def __init__(self, low: float = 0.25, high: float = 0.75) -> None:
        self.low, self.high = _fraction("low", low), _fraction("high", high)
        if self.low > self.high:
            raise ValueError(f"window bounds must satisfy low <= high, got low={self.low} high={self.high}")

    def params(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high}

    def describe(self) -> str:
        return f"fit-relative: fit confidence rescaled to the run's range in [{self.low}, {self.high}]"

    def window(self, history: TeacherHistory) -> list[int]:
        epochs = history.epochs
        rescaled = normalise([history.fit_confidence(e) for e in epochs])
        return [e for e, v in zip(epochs, rescaled) if self.low <= v <= self.high] or \
            _closest(rescaled, epochs, self.low, self.high)


def _knee(epochs: list[int], values: Sequence[float]) -> int:
    """The Kneedle point of a (decreasing, convex) curve: with epochs and values rescaled to [0, 1], the epoch
    farthest below the chord from the first to the last point (the earliest on ties); the first epoch when no
    point lies below the chord (a straight, concave or constant curve, or fewer than 3 finite points)."""
    points = [(e, v) for e, v in zip(epochs, values) if math.isfinite(v)]
    if len(points) < 3:
        return points[0][0] if points else epochs[0]
    x = np.array([e for e, _ in points], dtype=np.float64)
    x = (x - x[0]) / (x[-1] - x[0])
    y = normalise([v for _, v in points])
    below = (y[0] + (y[-1] - y[0]) * x) - y
    best = float(below.max())
    if not best > 1e-9:
        return points[0][0]
    return points[int(np.flatnonzero(below >= best - 1e-12)[0])][0]


class LossKnee(WindowRule):
    """From the end of fast learning to the onset of memorisation. The start is the knee of the training-loss
    curve (Kneedle: the epoch farthest below the chord joining the first and last points of the curve, both
    axes rescaled to [0, 1]; the first epoch if the curve has no knee). The end is the epoch of minimum
    validation NLL at or after the start (the validation NLL rises once the teacher memorises noisy labels);
    the start itself if no NLL is defined. Parameter-free."""

    name, version = "loss-knee", 1

    def describe(self) -> str:
        return "loss-knee: from the training-loss knee to the minimum validation NLL after it"

    def window(self, history: TeacherHistory) -> list[int]:
        epochs = history.epochs
        start = _knee(epochs, [history.train_loss(e) for e in epochs])
        after = [e for e in epochs if e >= start]
        losses = [history.val_nll(e) for e in after]
        finite = [(v, e) for e, v in zip(after, losses) if math.isfinite(v)]
        end = min(finite)[1] if finite else start
        return [e for e in epochs if start <= e <= end]


class ValNll(WindowRule):
    """The epoch of minimum validation NLL (the earliest on ties), where the teacher's probabilities explain
    held-out labels best: confident enough to be informative, before memorisation makes them confidently
    wrong. With ``tolerance`` t > 0 (relative, default 0) it also takes the contiguous run of neighbouring
    epochs whose NLL is at most (1 + t) x the minimum. No defined NLL: the best-validation epoch."""

    name, version = "val-nll", 1

    def __init__(self, tolerance: float = 0.0) -> None:
        self.tolerance = float(tolerance)
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance}")

    def params(self) -> dict[str, Any]:
        return {"tolerance": self.tolerance}

    def describe(self) -> str:
        extra = f" and neighbours within {self.tolerance:g} x of it" if self.tolerance else ""
        return f"val-nll: minimum validation NLL{extra}"

    def window(self, history: TeacherHistory) -> list[int]:
        epochs = history.epochs
        losses = np.array([history.val_nll(e) for e in epochs], dtype=np.float64)
        if not np.isfinite(losses).any():
            return [best_val_epoch(history)]
        best = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))
        bar = losses[best] + self.tolerance * abs(losses[best])
        first = last = best
        while self.tolerance and first > 0 and losses[first - 1] <= bar:
            first -= 1
        while self.tolerance and last < len(epochs) - 1 and losses[last + 1] <= bar:
            last += 1
        return epochs[first:last + 1]


class GeneralisationGap(WindowRule):
    """The epochs before memorisation shows as a growing generalisation gap. The gap of an epoch is its fit
    confidence on the training frames minus the mean probability it gives to the true validation labels,
    rescaled to [0, 1] by its own min and max over the run (a constant gap never grows: 0). The window is
    every epoch before the first one, after the epoch of smallest gap, whose rescaled gap exceeds ``margin``
    (default 0.25), keeping those whose validation score is at least ``min_val_ratio`` (0.9) x the run's
    best (which drops the under-fitted start, whose gap is small too); if none is kept, the best-validation
    epoch before the cut. An epoch whose gap is undefined (NaN) never ends the window."""

    name, version = "generalisation-gap", 1

    def __init__(self, margin: float = 0.25, min_val_ratio: float = 0.9) -> None:
        self.margin, self.min_val_ratio = _fraction("margin", margin), float(min_val_ratio)
        if not math.isfinite(self.min_val_ratio):
            raise ValueError(f"min_val_ratio must be finite, got {self.min_val_ratio}")

    def params(self) -> dict[str, Any]:
        return {"margin": self.margin, "min_val_ratio": self.min_val_ratio}

    def describe(self) -> str:
        return (f"generalisation-gap: before the rescaled train-val confidence gap exceeds {self.margin:g}, "
                f"val >= {self.min_val_ratio} x best")

    def window(self, history: TeacherHistory) -> list[int]:
        epochs = history.epochs
        gap = normalise([history.fit_confidence(e) - history.val_confidence(e) for e in epochs], constant=0.0)
        cut = len(epochs)
        if np.isfinite(gap).any():
            smallest = int(np.nanargmin(gap))
            beyond = [i for i in range(smallest + 1, len(epochs)) if gap[i] > self.margin]
            cut = beyond[0] if beyond else len(epochs)
        before = epochs[:cut]
        floor = _val_floor(history, self.min_val_ratio)
        return [e for e in before if history.val_score(e) >= floor] or [best_val_epoch(history, before)]


@hookimpl
def sdbench_window_rules() -> list[WindowRuleSpec]:
    return [
        WindowRuleSpec("band", "Fit confidence in a fixed band [low, high], val >= min_val_ratio x best", Band),
        WindowRuleSpec("epochs", "An explicit list of epochs (parameter epochs)", Epochs),
        WindowRuleSpec("fit-relative", "Fit confidence rescaled to the run's own range, in [low, high]",
                       FitRelative),
        WindowRuleSpec("loss-knee", "From the training-loss knee to the minimum validation NLL after it",
                       LossKnee),
        WindowRuleSpec("val-nll", "The minimum-validation-NLL epoch (and neighbours within a tolerance)", ValNll),
        WindowRuleSpec("generalisation-gap", "Before the train-val confidence gap grows, val >= ratio x best",
                       GeneralisationGap),
    ]
