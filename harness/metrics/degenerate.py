"""Degenerate students: models whose predictions on a set of frames carry no information.

A student is **degenerate** on N >= 2 frames when

- multi-class: its arg-max class is the same for all N frames, so it predicts one class for every frame;
- multi-label: for every class, its probabilities over the N frames span at most :data:`SPREAD`
  (``max - min``), so every class ranks all frames as ties up to float32 rounding.

Fewer than two frames are never degenerate: there is nothing to compare. A degenerate student scores what
a constant answer scores (the frequency of one class, the mAP of a random ranking), whatever taught it, so
its numbers say nothing about its strategy. It is what a fit that goes wrong without a non-finite loss
leaves behind: a learning rate far too high saturates every output.
"""

from __future__ import annotations

import numpy as np

SPREAD = 1e-6
"""The largest range of a multi-label class's probabilities over the frames that still counts as constant."""


def degenerate(probs: np.ndarray, task: str) -> str | None:
    """Why the (N, C) probabilities ``probs`` of a ``task`` model are degenerate, or None when they are not."""
    probs = np.asarray(probs)
    if len(probs) < 2:
        return None
    if task == "multiclass":
        classes = np.unique(probs.argmax(axis=1))
        return f"predicts class {classes[0]} for every one of the {len(probs)} frames" if len(classes) == 1 else None
    if (probs.max(axis=0) - probs.min(axis=0) <= SPREAD).all():
        return f"every class's probability is constant over the {len(probs)} frames (spread at most {SPREAD:g})"
    return None
