"""The strategy conformance kit: every registered strategy passes it, and broken strategies fail it with a
message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.conformance import (ConformanceError, StrategyConformance, check_deterministic, check_no_mutation,
                                 check_selection, check_soft_labels, synthetic_teachers)
from harness.conformance import sdbench_teachers  # noqa: F401 - the kit's pytest fixture, also an entry point
from harness.plugins import get_registry
from harness.strategy import Checkpoint, Selection, Strategy, soft_labels

# The kit runs over every registered strategy, so a new built-in one is tested without anyone adding a test.
for _name in get_registry().names("strategy"):
    _class = type(f"TestConformance_{_name.replace('-', '_')}", (StrategyConformance,), {"strategy_name": _name})
    globals()[_class.__name__] = _class


def test_synthetic_teachers_share_frames_and_differ_per_seed(tmp_path: Path):
    teachers = synthetic_teachers(tmp_path, "multiclass", (0, 1))
    assert teachers[0].epochs == list(range(1, 9)) and teachers[0].task == "multiclass"
    np.testing.assert_array_equal(teachers[0].val_labels, teachers[1].val_labels)
    assert not np.array_equal(teachers[0].train_probs(3), teachers[1].train_probs(3))
    np.testing.assert_allclose(teachers[0].train_probs(1).sum(axis=1), 1.0, rtol=1e-5)
    scores = [teachers[0].val_score(e) for e in teachers[0].epochs]
    assert max(scores) > scores[0] and max(scores) > scores[-1]  # rises, then falls


@pytest.fixture
def teachers(tmp_path: Path):
    return synthetic_teachers(tmp_path, "multiclass", (0,))


class Fixed(Strategy):
    def __init__(self, selection):
        self.selection = selection

    def select(self, teachers, seed):
        return self.selection


@pytest.mark.parametrize("selection, message", [
    (Selection((Checkpoint(0, 99),)), r"strategy 'broken', student seed 0: selected checkpoint s0e99, but teacher "
                                      r"seed 0 has epochs \[1, 2, 3, 4, 5, 6, 7, 8\]"),
    (Selection((Checkpoint(7, 1),)), r"selected checkpoint s7e1, but there is no teacher of seed 7 \(teacher "
                                     r"seeds: \[0\]\)"),
    ([Checkpoint(0, 1)], r"select\(\) returned \[Checkpoint\(seed=0, epoch=1\)\], expected a harness.strategy.Selection"),
    (Selection((Checkpoint(0, 1), Checkpoint(0, 2)), weights=(1.0, -1.0)), r"weights \[1.0, -1.0\] must be finite, "
                                                                           r"non-negative and not all zero"),
])
def test_bad_selections_are_named(teachers, selection, message):
    with pytest.raises(ConformanceError, match=message):
        check_selection("broken", Fixed(selection).select(teachers, 0), teachers, 0)


class Logits(Strategy):
    """Returns logits instead of probabilities: a classic mistake."""

    def select(self, teachers, seed):
        return Selection((Checkpoint(seed, 1),))

    def combine(self, probs, weights):
        return np.log(np.asarray(probs[0])).astype(np.float32)


class Unnormalised(Logits):
    def combine(self, probs, weights):
        return (np.asarray(probs[0]) ** 2).astype(np.float32)


class Float64(Logits):
    def combine(self, probs, weights):
        return np.asarray(probs[0], dtype=np.float64)


@pytest.mark.parametrize("strategy, message", [
    (Logits(), r"soft labels must be probabilities in \[0, 1\], got values in \[-\d.*\(logits instead of probabilities\?\)"),
    (Unnormalised(), r"multi-class soft labels must sum to 1 per frame, got row sums in"),
    (Float64(), r"soft labels of dtype float64, expected float32"),
])
def test_bad_soft_labels_are_named(teachers, strategy, message):
    with pytest.raises(ConformanceError, match=message):
        check_soft_labels("broken", soft_labels(strategy, teachers, 0)[1], teachers, 0)


def test_hard_labels_pass_the_soft_label_check(teachers):
    check_soft_labels("hard", None, teachers, 0)


def test_nondeterminism_is_named(teachers):
    class Alternating(Strategy):
        calls = 0

        def select(self, teachers, seed):
            Alternating.calls += 1
            return Selection((Checkpoint(seed, 1 + Alternating.calls % 2),))

    with pytest.raises(ConformanceError, match=r"strategy 'coin', student seed 0: not deterministic; the same "
                                               r"histories gave 's0e2' and then 's0e1'"):
        check_deterministic("coin", Alternating, teachers, 0)


class Tamper(Strategy):
    """Writes into the histories it reads."""

    def select(self, teachers, seed):
        teachers[seed].records[0].val_metrics["score"] = 1.0
        (teachers[seed].directory / "probs" / "train_001.npy").write_bytes(b"")
        return Selection()


def test_mutation_is_named(teachers):
    with pytest.raises(ConformanceError, match=r"changed the teacher histories, which must stay read-only: "
                                               r".*probs/train_001.npy, the records of teacher seed 0"):
        check_no_mutation("tamper", Tamper(), teachers, 0)


def test_an_unregistered_strategy_is_not_discoverable():
    class Missing(StrategyConformance):
        strategy_name = "no-such-strategy"

    with pytest.raises(ConformanceError, match="strategy 'no-such-strategy' is not registered. Is its package "
                                               "installed with an 'sdbench' entry point?"):
        Missing().test_is_discoverable()


def test_fixture_factory_builds_histories(sdbench_teachers):
    teachers = sdbench_teachers("multilabel", seeds=(3, 4), epochs=2)
    assert sorted(teachers) == [3, 4] and teachers[3].epochs == [1, 2]
