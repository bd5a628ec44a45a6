"""The checks of the strategy and window-rule kits: plain functions, usable outside pytest, each raising a
:class:`~harness.kits.synthetic.ConformanceError` that names the plugin, the check and what was wrong."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any, Callable, Mapping

import numpy as np

from harness.kits.synthetic import ConformanceError
from harness.science.strategy import Selection, Strategy, Teachers, soft_labels
from harness.train.history import TeacherHistory

# -- the checks: plain functions, usable outside pytest -------------------------------------------------


def check_selection(name: str, selection: Any, teachers: Teachers, seed: int) -> None:
    """``selection`` is a Selection of existing checkpoints with finite, non-negative, non-zero weights."""
    where = f"strategy '{name}', student seed {seed}"
    if not isinstance(selection, Selection):
        raise ConformanceError(f"{where}: select() returned {selection!r}, expected a harness.science.strategy.Selection")
    for checkpoint in selection.checkpoints:
        if checkpoint.seed not in teachers:
            raise ConformanceError(f"{where}: selected checkpoint {checkpoint}, but there is no teacher of seed "
                                   f"{checkpoint.seed} (teacher seeds: {sorted(teachers)})")
        epochs = teachers[checkpoint.seed].epochs
        if checkpoint.epoch not in epochs:
            raise ConformanceError(f"{where}: selected checkpoint {checkpoint}, but teacher seed {checkpoint.seed} "
                                   f"has epochs {epochs}")
    if selection.weights is not None:
        weights = np.asarray(selection.weights, dtype=np.float64)
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ConformanceError(f"{where}: weights {list(selection.weights)} must be finite, non-negative "
                                   "and not all zero")
    if not math.isfinite(selection.temperature):
        raise ConformanceError(f"{where}: temperature {selection.temperature} must be finite")


def check_soft_labels(name: str, soft: np.ndarray | None, teachers: Teachers, seed: int) -> None:
    """Soft labels (None: hard labels) have the training probabilities' shape, dtype float32 and valid values."""
    if soft is None:
        return
    where = f"strategy '{name}', student seed {seed}"
    history = teachers[seed]
    expected = history.train_probs(history.epochs[0]).shape
    if not isinstance(soft, np.ndarray) or soft.shape != expected:
        raise ConformanceError(f"{where}: soft labels of shape {getattr(soft, 'shape', type(soft))}, expected "
                               f"{expected} (training frames x classes)")
    if soft.dtype != np.float32:
        raise ConformanceError(f"{where}: soft labels of dtype {soft.dtype}, expected float32")
    if not np.isfinite(soft).all() or soft.min() < 0 or soft.max() > 1:
        raise ConformanceError(f"{where}: soft labels must be probabilities in [0, 1], got values in "
                               f"[{np.nanmin(soft):.4g}, {np.nanmax(soft):.4g}] (logits instead of probabilities?)")
    if history.task == "multiclass":
        sums = soft.sum(axis=1, dtype=np.float64)
        if not np.allclose(sums, 1.0, atol=1e-4):
            raise ConformanceError(f"{where}: multi-class soft labels must sum to 1 per frame, got row sums in "
                                   f"[{sums.min():.4g}, {sums.max():.4g}]")


def check_deterministic(name: str, make_strategy: Callable[[], Strategy], teachers: Teachers, seed: int) -> None:
    """The same histories give the same selection and soft labels, from one instance and from a fresh one."""
    strategy = make_strategy()
    results = [soft_labels(s, teachers, seed) for s in (strategy, strategy, make_strategy())]
    (first_selection, first_soft), *others = results
    for selection, soft in others:
        same_soft = (soft is None and first_soft is None) or (
            soft is not None and first_soft is not None and np.array_equal(soft, first_soft))
        if selection != first_selection or not same_soft:
            raise ConformanceError(f"strategy '{name}', student seed {seed}: not deterministic; the same histories "
                                   f"gave {first_selection.describe()!r} and then {selection.describe()!r} "
                                   "(or different soft labels). Seed any randomness from the histories.")


def history_fingerprint(teachers: Teachers) -> dict[str, str]:
    """A digest of every file of every history, by path."""
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for history in teachers.values() for path in sorted(history.directory.rglob("*")) if path.is_file()}


def check_no_mutation(name: str, strategy: Strategy, teachers: Teachers, seed: int) -> None:
    """Running the strategy leaves the history files and the loaded records as they were."""
    files, records = history_fingerprint(teachers), copy.deepcopy({s: h.records for s, h in teachers.items()})
    soft_labels(strategy, teachers, seed)
    after = history_fingerprint(teachers)
    changed = sorted(path for path in set(files) | set(after) if files.get(path) != after.get(path))
    changed += [f"the records of teacher seed {s}" for s, h in teachers.items() if h.records != records[s]]
    if changed:
        raise ConformanceError(f"strategy '{name}', student seed {seed}: changed the teacher histories, which "
                               f"must stay read-only: {', '.join(changed)}")


def check_window(name: str, window: Any, history: TeacherHistory) -> None:
    """``window`` is a sorted, non-empty list of distinct epochs of ``history``."""
    where = f"window rule '{name}', teacher seed {history.seed} with epochs {history.epochs}"
    if not isinstance(window, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in window):
        raise ConformanceError(f"{where}: window() returned {window!r}, expected a list of int epochs")
    if not window:
        raise ConformanceError(f"{where}: window() returned no epoch; a window is never empty")
    if window != sorted(set(window)):
        raise ConformanceError(f"{where}: window() returned {window}, expected distinct epochs in increasing order")
    outside = [e for e in window if e not in history.epochs]
    if outside:
        raise ConformanceError(f"{where}: window() returned epochs {outside} that the history does not have")


def check_window_deterministic(name: str, make_rule: Callable[[], Any], history: TeacherHistory) -> None:
    """The same history gives the same window, from one instance and from a fresh one."""
    rule = make_rule()
    first, *others = [r.window(history) for r in (rule, rule, make_rule())]
    for other in others:
        if other != first:
            raise ConformanceError(f"window rule '{name}': not deterministic; the same history gave {first} and "
                                   f"then {other}")


def check_window_no_mutation(name: str, rule: Any, history: TeacherHistory) -> None:
    """Running the rule leaves the history files and the loaded records as they were."""
    files, records = history_fingerprint({0: history}), copy.deepcopy(history.records)
    rule.window(history)
    after = history_fingerprint({0: history})
    changed = sorted(path for path in set(files) | set(after) if files.get(path) != after.get(path))
    changed += ["the records"] if history.records != records else []
    if changed:
        raise ConformanceError(f"window rule '{name}': changed the teacher history, which must stay read-only: "
                               f"{', '.join(changed)}")


def check_window_describes_itself(name: str, rule: Any) -> None:
    """``describe()`` is a non-empty string and ``key()`` a JSON-serialisable mapping with the rule's name."""
    description = rule.describe()
    if not isinstance(description, str) or not description.strip():
        raise ConformanceError(f"window rule '{name}': describe() returned {description!r}, expected a non-empty "
                               "string")
    key = rule.key()
    if not isinstance(key, Mapping) or not isinstance(key.get("name"), str) or not key["name"]:
        raise ConformanceError(f"window rule '{name}': key() returned {key!r}, expected a mapping with the rule's "
                               "'name' (it is part of the soft-label cache key, which must tell rules apart)")
    try:
        json.dumps(key, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"window rule '{name}': key() returned {key!r}, which is not JSON-serialisable "
                               f"(it is part of the soft-label cache key): {exc}") from None


def check_registered(kind: str, name: str, label: str | None = None) -> None:
    """``name`` is registered as a plugin of ``kind``; the error lists what is registered and the plugin problems."""
    from harness.hooks.registry import get_registry

    registry = get_registry()
    if name not in registry.names(kind):
        problems = "; ".join(registry.problems) or "none"
        raise ConformanceError(f"{label or kind} '{name}' is not registered. Is its package installed with an "
                               f"'sdbench' entry point? Registered: {registry.names(kind)}. Plugin problems: {problems}")


