"""The soft-labels job: one strategy's soft labels for one student seed, computed in the run's process (numpy
only, and fast), and read back by the students that train on them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import SdbenchError
from harness.runs.context import JobContext
from harness.science.strategy import Checkpoint, Selection, Strategy, soft_labels
from harness.system.atomic import write_json, write_npy
from harness.system.locks import LockBusyError, held
from harness.train.history import TeacherHistory

TeachersByKey = dict[int, tuple[str, TeacherHistory]]
"""The teachers of one cell by seed: each one's job key and history."""


def soft_labels_job(context: JobContext, name: str, strategy: Strategy, seed: int, teachers: TeachersByKey,
                    params: dict[str, Any] | None = None) -> tuple[str, str, Selection]:
    """The soft labels of one strategy for the student of ``seed``: their artifact key, a digest of their
    content (``hard`` for hard labels) and the selection. ``params`` are the strategy's parameters (default:
    from the config).

    They are computed under their artifact's lock, unless they are complete by then: when another process
    computed them meanwhile, its artifact is read, not replaced (under ``rerun: all``, when it finished after
    this run started)."""
    store = context.store
    params = context.config.strategy_params.get(name, {}) if params is None else params
    key, config = context.plan.teaching_key(name, params, seed, {s: k for s, (k, _) in teachers.items()},
                                            strategy.cache_identity())

    def compute(wait: bool) -> None:
        with store.writing("softlabels", key, config, fresh=True, wait=wait, since=context.since) as tmp:
            if tmp is None:
                return
            selection, soft = soft_labels(strategy, {s: h for s, (_, h) in teachers.items()}, seed)
            write_json(tmp / "selection.json",
                       {"strategy": name, "checkpoints": [[c.seed, c.epoch] for c in selection.checkpoints],
                        "weights": selection.weights, "note": selection.note, "temperature": selection.temperature,
                        "teacher_keys": {str(c.seed): teachers[c.seed][0] for c in selection.checkpoints},
                        "digest": digest(soft)})
            if soft is not None:
                write_npy(tmp / "soft_labels.npy", soft)

    if not store.is_complete("softlabels", key, context.since):
        try:
            compute(wait=False)
        except LockBusyError:
            context.progress.line(f"waiting for soft labels {name} seed {seed} ({key}): held by another process")
            compute(wait=True)
    path = store.path("softlabels", key)
    record = json.loads((path / "selection.json").read_text())
    found = record.get("digest") or digest(read_soft(path))  # older artifacts did not record it
    return key, found, _selection(record)


def student_soft_labels(context: JobContext, key: str) -> np.ndarray | None:
    """The soft labels a student trains on (None: hard labels), read under their artifact's lock, so never while
    another run replaces them (``rerun: all``); a missing artifact is an error, never hard labels."""
    store = context.store
    with held(store.lock_path("softlabels", key), f"soft labels {key}"):
        if not store.is_complete("softlabels", key):
            raise SdbenchError(f"the soft labels this student trains on ({store.path('softlabels', key)}) "
                               "are not complete; rerun to recompute them")
        return read_soft(store.path("softlabels", key))


def digest(soft: np.ndarray | None) -> str:
    """What a student's key depends on: the soft labels' content, or ``hard``."""
    return "hard" if soft is None else hashlib.sha256(soft.tobytes()).hexdigest()[:20]


def read_soft(path: Path) -> np.ndarray | None:
    """The soft labels of a soft-labels artifact; None for hard labels."""
    soft_path = path / "soft_labels.npy"
    return np.load(soft_path) if soft_path.exists() else None


def _selection(record: dict[str, Any]) -> Selection:
    """The selection written in a soft-labels artifact's ``selection.json``."""
    return Selection(tuple(Checkpoint(s, e) for s, e in record["checkpoints"]),
                     None if record["weights"] is None else tuple(record["weights"]), record["note"],
                     record.get("temperature", 1.0))
