"""What the conformance kits check plugins on: synthetic teacher histories (several tasks, seeds and shapes),
and the error a failed check raises."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory

SCENARIOS: dict[str, tuple[str, tuple[int, ...]]] = {
    "multilabel-1-seed": ("multilabel", (0,)),
    "multilabel-3-seeds": ("multilabel", (0, 1, 2)),
    "multiclass-1-seed": ("multiclass", (0,)),
    "multiclass-3-seeds": ("multiclass", (0, 1, 2)),
}
EPOCHS, TRAIN_FRAMES, VAL_FRAMES, CLASSES = 8, 12, 8, 4


class ConformanceError(AssertionError):
    """A strategy broke a rule every strategy must follow; the message says which and how."""


def _labels(rng: np.random.Generator, frames: int, task: str) -> np.ndarray:
    if task == "multiclass":
        return np.arange(frames) % CLASSES
    labels = (rng.random((frames, CLASSES)) < 0.4).astype(np.uint8)
    labels[np.arange(frames), np.arange(frames) % CLASSES] = 1  # every frame and class has a positive
    return labels


def _probs(rng: np.random.Generator, labels: np.ndarray, task: str, strength: float) -> np.ndarray:
    """Probabilities whose agreement with ``labels`` grows with ``strength``, plus noise."""
    if task == "multiclass":
        logits = rng.normal(0.0, 1.0, (len(labels), CLASSES))
        logits[np.arange(len(labels)), labels] += strength
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    logits = rng.normal(0.0, 1.0, labels.shape) + strength * (2.0 * labels - 1.0)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def synthetic_teachers(directory: Path, task: str = "multilabel", seeds: Sequence[int] = (0,),
                       epochs: int = EPOCHS) -> dict[int, TeacherHistory]:
    """Teacher histories that look like training: the fit to the labels grows epoch after epoch, the
    validation score rises and falls again (its peak differs per seed). All seeds share the training and
    validation frames, as the teachers of one cell do. Deterministic."""
    frames_rng = np.random.default_rng(12345)
    train_labels, val_labels = _labels(frames_rng, TRAIN_FRAMES, task), _labels(frames_rng, VAL_FRAMES, task)
    teachers = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        writer = HistoryWriter(Path(directory) / f"seed-{seed}", seed, task, "score", train_labels, val_labels)
        for epoch in range(1, epochs + 1):
            strength = 4.0 * epoch / epochs
            score = 0.5 + 0.3 * math.sin(math.pi * epoch / (epochs + 1 + seed))
            writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"score": score}),
                             _probs(rng, train_labels, task, strength), _probs(rng, val_labels, task, strength))
        teachers[seed] = TeacherHistory(Path(directory) / f"seed-{seed}")
    return teachers



# -- window rules ----------------------------------------------------------------------------------------

WINDOW_SCENARIOS: dict[str, tuple[str, str, int]] = {
    f"{task}-{shape}": (task, shape, epochs) for task in ("multilabel", "multiclass")
    for shape, epochs in (("8-epochs", 8), ("2-epochs", 2), ("1-epoch", 1), ("constant", 4), ("no-val", 5))
}
"""Window-rule scenarios: task, shape (``N-epochs`` of :func:`synthetic_teachers`; ``constant``: every epoch
the same loss, score and probabilities; ``no-val``: no validation frames, so NaN validation NLL) and epochs."""


def window_history(directory: Path, task: str, shape: str, epochs: int) -> TeacherHistory:
    """One teacher history of a :data:`WINDOW_SCENARIOS` shape. Deterministic."""
    if shape.endswith(("-epochs", "-epoch")):
        return synthetic_teachers(directory, task, (0,), epochs)[0]
    rng = np.random.default_rng(7)
    train_labels, val_labels = _labels(rng, TRAIN_FRAMES, task), _labels(rng, VAL_FRAMES, task)
    if shape == "no-val":
        val_labels = val_labels[:0]
    writer = HistoryWriter(Path(directory), 0, task, "score", train_labels, val_labels)
    train_probs, val_probs = _probs(rng, train_labels, task, 2.0), _probs(rng, val_labels, task, 2.0)
    for epoch in range(1, epochs + 1):
        if shape == "no-val":
            train_probs = _probs(rng, train_labels, task, 4.0 * epoch / epochs)
        writer.add_epoch(EpochRecord(epoch, 1.0 if shape == "constant" else 1.0 / epoch,
                                     {"score": 0.5 if shape == "constant" else 0.1 * epoch}), train_probs, val_probs)
    return TeacherHistory(Path(directory))


