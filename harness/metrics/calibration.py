"""Temperature scaling of probabilities, and fitting the temperature on labelled frames.

A temperature ``T`` divides the logits: ``sigmoid(logit(p) / T)`` for multi-label tasks (each class on its
own), ``softmax(log(p) / T)`` for multi-class tasks (``log p`` are logits up to a per-row constant, which
the softmax ignores). ``T > 1`` softens the probabilities towards 0.5 (or uniform), ``T < 1`` sharpens them,
``T = 1`` leaves them unchanged. Probabilities are clipped to ``[EPS, 1 - EPS]`` so that 0 and 1 stay finite.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _logits(probs: np.ndarray, task: str) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) if task == "multiclass" else np.log(p) - np.log1p(-p)


def _probs(logits: np.ndarray, task: str) -> np.ndarray:
    if task == "multiclass":
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


def apply_temperature(probs: np.ndarray, temperature: float, task: str) -> np.ndarray:
    """``probs`` rescaled by ``temperature`` in logit space, as float64; unchanged (a copy) when T = 1."""
    if temperature <= 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    if temperature == 1.0:
        return np.array(probs, dtype=np.float64)
    return _probs(_logits(probs, task) / temperature, task)


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray, task: str) -> float:
    """Mean NLL of hard ``labels``: per frame for multi-class, per (frame, class) entry for multi-label."""
    p = np.clip(np.asarray(probs, dtype=np.float64), EPS, 1.0 - EPS)
    labels = np.asarray(labels)
    if task == "multiclass":
        return float(-np.log(p[np.arange(len(labels)), labels]).mean())
    y = labels > 0
    return float(-np.where(y, np.log(p), np.log1p(-p)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, task: str, low: float = 0.05,
                    high: float = 20.0, tolerance: float = 1e-6) -> float:
    """The temperature in ``[low, high]`` that minimises the NLL of ``labels`` under the rescaled ``probs``.

    The NLL is convex in ``1 / T`` (a one-parameter logistic regression on fixed logits), hence unimodal in
    ``log T``: a golden-section search over ``log T`` finds the minimum, or the bound it lies beyond."""
    logits = _logits(probs, task)

    def loss(log_t: float) -> float:
        return negative_log_likelihood(_probs(logits / math.exp(log_t), task), labels, task)

    a, b = math.log(low), math.log(high)
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = loss(d)
    return math.exp((a + b) / 2.0)
