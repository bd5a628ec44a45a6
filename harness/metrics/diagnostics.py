"""Soft-label diagnostics of one teacher epoch, measured on the validation frames.

They tell how confident, how uncertain and how well calibrated a checkpoint's probabilities are, which is
what decides whether it makes a good teacher (an under-fitting teacher is unsure, an over-fitting one is
confidently wrong). All three are pure numpy functions of ``(probs, labels, task)``:

``mean_max_prob``
    Multi-class: the mean over frames of the largest class probability (the top-label confidence).
    Multi-label: every (frame, class) entry is a binary decision whose confidence is ``max(p, 1 - p)``; the
    mean over all entries. 0.5 is a coin flip, 1.0 a fully confident teacher.
``mean_entropy``
    In nats. Multi-class: the mean over frames of the Shannon entropy of the class distribution (at most
    ``log C``). Multi-label: the mean over all (frame, class) entries of the binary entropy of ``p`` (at
    most ``log 2``).
``ece``
    Expected calibration error with ``ECE_BINS`` equal-width bins, ``sum_b |B_b| / n * |acc_b - conf_b|``.
    Multi-class: the standard top-label ECE (confidence = the top probability, accuracy = whether the top
    class is the annotated one). Multi-label: every (frame, class) entry is pooled into one set and binned
    by ``p`` itself; a bin's "accuracy" is its fraction of positive labels. It measures whether a
    probability of 0.3 really means "positive 30% of the time", which is what a soft label claims.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
DIAGNOSTICS = ("mean_max_prob", "mean_entropy", "ece")
_EPS = 1e-12


def _as_float(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs, dtype=np.float64)


def mean_max_prob(probs: np.ndarray, task: str) -> float:
    p = _as_float(probs)
    if task == "multiclass":
        return float(p.max(axis=1).mean())
    return float(np.maximum(p, 1.0 - p).mean())


def mean_entropy(probs: np.ndarray, task: str) -> float:
    p = np.clip(_as_float(probs), _EPS, 1.0)
    if task == "multiclass":
        return float(-(p * np.log(p)).sum(axis=1).mean())
    q = np.clip(1.0 - _as_float(probs), _EPS, 1.0)
    return float(-(p * np.log(p) + q * np.log(q)).mean())


def binned_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """``sum_b |B_b| / n * |mean(correct in b) - mean(confidence in b)|`` over ``bins`` equal-width bins of
    [0, 1]; bin b holds the confidences in ``(b / bins, (b + 1) / bins]`` (bin 0 also holds 0)."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    which = np.digitize(confidence, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, minlength=bins) - np.bincount(which, confidence, minlength=bins))
    return float(gap.sum() / count.sum())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, task: str, bins: int = ECE_BINS) -> float:
    p = _as_float(probs)
    if task == "multiclass":
        return binned_calibration_error(p.max(axis=1), p.argmax(axis=1) == np.asarray(labels), bins)
    return binned_calibration_error(p, np.asarray(labels) > 0, bins)


def diagnose(probs: np.ndarray, labels: np.ndarray, task: str) -> dict[str, float]:
    """The three diagnostics of one epoch's validation probabilities; NaN for an empty validation set."""
    if task not in ("multiclass", "multilabel"):
        raise ValueError(f"unknown task '{task}': expected 'multiclass' or 'multilabel'")
    if len(probs) == 0:
        return {name: float("nan") for name in DIAGNOSTICS}
    return {"mean_max_prob": mean_max_prob(probs, task), "mean_entropy": mean_entropy(probs, task),
            "ece": expected_calibration_error(probs, labels, task)}


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels``: multi-class (labels of shape (N,)) ``-log p[label]`` per
    frame; multi-label (labels (N, C)) the binary cross-entropy averaged over every (frame, class) entry.
    Probabilities are clipped to [1e-12, 1]; NaN for no frames."""
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    if labels.ndim == 1:
        return float(-np.log(np.clip(p[np.arange(len(labels)), labels], _EPS, 1.0)).mean())
    positive = labels.astype(bool)
    return float(-np.where(positive, np.log(np.clip(p, _EPS, 1.0)), np.log(np.clip(1.0 - p, _EPS, 1.0))).mean())


def true_label_confidence(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean probability given to the true labels (the positive entries for multi-label, the annotated class
    for multi-class), as :meth:`TeacherHistory.fit_confidence` measures it; NaN when there are none."""
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return float(p[np.arange(len(labels)), labels].mean()) if len(labels) else float("nan")
    positive = labels.astype(bool)
    return float(p[positive].mean()) if positive.any() else float("nan")
