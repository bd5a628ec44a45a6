"""Conformance tests for teacher strategies: what every strategy must do, checked on synthetic histories.

A strategy package tests itself by subclassing :class:`StrategyConformance` in one of its test modules::

    from harness.conformance import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my-strategy"      # the name its StrategySpec registers
        params = {"k": 2}                  # strategy_params for the factory (optional)

pytest then runs, for multi-label and multi-class histories with one and with three teacher seeds: the
strategy is discoverable through the plugin registry; its selection refers to existing seeds and epochs
with valid weights; its soft labels have the shape of the training probabilities, dtype float32, values in
[0, 1] and (multi-class) rows summing to 1; it is deterministic; it does not modify the histories. A failure
says which strategy, which check and what was wrong.

Window rules have their kit too: subclass :class:`WindowRuleConformance` and set ``rule_name`` (and
``params``); on multi-label and multi-class histories of 8, 2 and 1 epochs, constant histories and one
without validation frames, it checks that the rule is discoverable, returns a sorted non-empty subset of the
history's epochs, is deterministic, leaves the history untouched and describes itself.

This module is also a pytest plugin (entry point ``pytest11``): it provides the fixture
``sdbench_teachers``, a factory of the same synthetic histories for a package's own tests.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pytest

from harness.history import EpochRecord, HistoryWriter, TeacherHistory
from harness.strategy import Selection, Strategy, Teachers, soft_labels
from harness.windows import WindowRule, window_rule

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


# -- the checks: plain functions, usable outside pytest -------------------------------------------------


def check_selection(name: str, selection: Any, teachers: Teachers, seed: int) -> None:
    """``selection`` is a Selection of existing checkpoints with finite, non-negative, non-zero weights."""
    where = f"strategy '{name}', student seed {seed}"
    if not isinstance(selection, Selection):
        raise ConformanceError(f"{where}: select() returned {selection!r}, expected a harness.strategy.Selection")
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
    from harness.plugins import get_registry

    registry = get_registry()
    if name not in registry.names(kind):
        problems = "; ".join(registry.problems) or "none"
        raise ConformanceError(f"{label or kind} '{name}' is not registered. Is its package installed with an "
                               f"'sdbench' entry point? Registered: {registry.names(kind)}. Plugin problems: {problems}")


# -- the pytest side -----------------------------------------------------------------------------------


class StrategyConformance:
    """Subclass in a test module, set ``strategy_name`` (and ``params``): pytest runs every check."""

    strategy_name: str = ""
    params: Mapping[str, Any] = {}

    def make_strategy(self) -> Strategy:
        from harness.plugins import get_registry

        return get_registry().get("strategy", self.strategy_name).factory(**dict(self.params))

    @pytest.fixture(scope="class", params=list(SCENARIOS))
    @classmethod
    def teachers(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Teachers:
        task, seeds = SCENARIOS[request.param]
        return synthetic_teachers(tmp_path_factory.mktemp(request.param), task, seeds)

    def test_is_discoverable(self) -> None:
        check_registered("strategy", self.strategy_name)
        strategy = self.make_strategy()
        if not isinstance(strategy, Strategy):
            raise ConformanceError(f"strategy '{self.strategy_name}': its factory returned {strategy!r}, expected "
                                   "a harness.strategy.Strategy")

    def test_selects_existing_checkpoints(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)

    def test_soft_labels_are_probabilities(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_soft_labels(self.strategy_name, soft_labels(strategy, teachers, seed)[1], teachers, seed)

    def test_is_deterministic(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_deterministic(self.strategy_name, self.make_strategy, teachers, seed)

    def test_does_not_mutate_histories(self, teachers: Teachers) -> None:
        for seed in teachers:
            check_no_mutation(self.strategy_name, self.make_strategy(), teachers, seed)


class WindowRuleConformance:
    """Subclass in a test module, set ``rule_name`` (and ``params``): pytest runs every window-rule check."""

    rule_name: str = ""
    params: Mapping[str, Any] = {}

    def make_rule(self) -> WindowRule:
        return window_rule({"name": self.rule_name, **dict(self.params)})

    @pytest.fixture(scope="class", params=list(WINDOW_SCENARIOS))
    @classmethod
    def history(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TeacherHistory:
        return window_history(tmp_path_factory.mktemp(request.param), *WINDOW_SCENARIOS[request.param])

    def test_is_discoverable(self) -> None:
        check_registered("window", self.rule_name, "window rule")
        rule = self.make_rule()
        if not isinstance(rule, WindowRule):
            raise ConformanceError(f"window rule '{self.rule_name}': its factory returned {rule!r}, expected a "
                                   "harness.windows.WindowRule")

    def test_describes_itself(self) -> None:
        check_window_describes_itself(self.rule_name, self.make_rule())

    def test_window_is_a_sorted_subset_of_the_epochs(self, history: TeacherHistory) -> None:
        check_window(self.rule_name, self.make_rule().window(history), history)

    def test_is_deterministic(self, history: TeacherHistory) -> None:
        check_window_deterministic(self.rule_name, self.make_rule, history)

    def test_does_not_mutate_the_history(self, history: TeacherHistory) -> None:
        check_window_no_mutation(self.rule_name, self.make_rule(), history)


@pytest.fixture
def sdbench_teachers(tmp_path: Path) -> Callable[..., dict[int, TeacherHistory]]:
    """``sdbench_teachers(task="multilabel", seeds=(0,), epochs=8)``: synthetic teacher histories by seed."""
    count = iter(range(1_000_000))

    def make(task: str = "multilabel", seeds: Sequence[int] = (0,), epochs: int = EPOCHS) -> dict[int, TeacherHistory]:
        return synthetic_teachers(tmp_path / f"teachers-{next(count)}", task, seeds, epochs)

    return make
