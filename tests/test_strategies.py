"""Each built-in strategy's selection on hand-made histories, and the soft labels it produces."""

from __future__ import annotations

import numpy as np
import pytest

from harness.hooks.registry import get_registry
from harness.science.selection import window_rule
from harness.science.strategy import Checkpoint, Selection, Strategy, soft_labels

# Epoch:            1     2     3     4     5     6     7
CONFIDENCE = [0.30, 0.45, 0.60, 0.70, 0.80, 0.90, 0.95]
VAL = [0.10, 0.30, 0.58, 0.60, 0.59, 0.62, 0.50]
# Default window: confidence in [0.5, 0.85] -> epochs 3, 4, 5; val >= 0.9 * 0.62 = 0.558 keeps all three.


def strategy(name: str, **params) -> Strategy:
    return get_registry().get("strategy", name).factory(**params)


@pytest.fixture
def teachers(make_history):
    return {0: make_history(0, CONFIDENCE, VAL), 1: make_history(1, CONFIDENCE[::-1], VAL[::-1])}


def test_hard_selects_nothing(teachers):
    selection, soft = soft_labels(strategy("hard"), teachers, 0)
    assert selection.is_hard and soft is None


def test_last_selects_final_epoch(teachers):
    assert strategy("last").select(teachers, 0).checkpoints == (Checkpoint(0, 7),)


def test_best_val_selects_highest_validation_score(teachers):
    assert strategy("best-val").select(teachers, 0).checkpoints == (Checkpoint(0, 6),)
    assert strategy("best-val").select(teachers, 1).checkpoints == (Checkpoint(1, 2),)


def test_best_val_takes_earliest_epoch_on_ties(make_history):
    tied = {0: make_history(0, [0.5, 0.6, 0.7], [0.4, 0.6, 0.6])}
    assert strategy("best-val").select(tied, 0).checkpoints == (Checkpoint(0, 2),)


def test_fit_confidence_is_mean_probability_on_true_labels(teachers):
    assert teachers[0].fit_confidence(3) == pytest.approx(0.60)


def test_fit_confidence_multiclass(make_history):
    history = make_history(0, [0.25, 0.8], [0.1, 0.2], labels=np.array([0, 2, 1, 2]), task="multiclass")
    assert history.fit_confidence(2) == pytest.approx(0.8)


def test_window_is_the_confident_but_not_overconfident_epochs(teachers):
    assert window_rule("band").window(teachers[0]) == [3, 4, 5]


def test_window_drops_epochs_with_poor_validation(make_history):
    history = make_history(0, CONFIDENCE, [0.10, 0.30, 0.40, 0.60, 0.59, 0.62, 0.50])
    assert window_rule("band").window(history) == [4, 5]


def test_window_falls_back_to_closest_epoch_when_empty(make_history):
    history = make_history(0, [0.90, 0.95, 0.99], [0.5, 0.6, 0.7])
    assert window_rule("band").window(history) == [1]


def test_explicit_window_epochs(teachers):
    assert strategy("iee", epochs=[2, 6]).select(teachers, 0).checkpoints == (Checkpoint(0, 2), Checkpoint(0, 6))
    with pytest.raises(ValueError, match=r"window epochs \[9\]"):
        strategy("iee", epochs=[2, 9]).select(teachers, 0)


def test_invalid_window_bounds_are_rejected():
    with pytest.raises(ValueError, match="low <= high"):
        strategy("it", low=0.9, high=0.5)


def test_it_takes_best_validation_inside_window(teachers):
    assert strategy("it", window="band").select(teachers, 0).checkpoints == (Checkpoint(0, 4),)


def test_iee_averages_window_probabilities(teachers):
    selection, soft = soft_labels(strategy("iee", window="band"), teachers, 0)
    assert selection.checkpoints == (Checkpoint(0, 3), Checkpoint(0, 4), Checkpoint(0, 5))
    labels = teachers[0].train_labels
    expected_true = np.mean([0.6, 0.7, 0.8])
    np.testing.assert_allclose(soft, np.where(labels == 1, expected_true, 1 - expected_true), rtol=1e-6)


def test_iese_spans_all_seeds(teachers):
    # Seed 1's confidences are reversed: 0.95 0.90 0.80 0.70 0.60 0.45 0.30 -> window epochs 3, 4, 5 too,
    # whose validation scores (0.59, 0.60, 0.58) pass the 0.9 x 0.62 bar.
    selection, soft = soft_labels(strategy("iese", window="band"), teachers, 0)
    assert selection.checkpoints == tuple(Checkpoint(s, e) for s in (0, 1) for e in (3, 4, 5))
    labels = teachers[0].train_labels
    expected_true = np.mean([0.6, 0.7, 0.8, 0.8, 0.7, 0.6])
    np.testing.assert_allclose(soft, np.where(labels == 1, expected_true, 1 - expected_true), rtol=1e-6)
    assert strategy("iese", window="band").select(teachers, 1) == selection


def test_weighted_combination_is_a_weighted_mean_of_probabilities(teachers):
    class Weighted(Strategy):
        def select(self, teachers, seed):
            return Selection((Checkpoint(0, 1), Checkpoint(0, 7)), weights=(3.0, 1.0))

    _, soft = soft_labels(Weighted(), teachers, 0)
    labels = teachers[0].train_labels
    expected_true = (3 * 0.30 + 0.95) / 4
    np.testing.assert_allclose(soft, np.where(labels == 1, expected_true, 1 - expected_true), rtol=1e-6)


def test_selecting_an_unknown_seed_is_a_clear_error(teachers):
    class Wrong(Strategy):
        def select(self, teachers, seed):
            return Selection((Checkpoint(5, 1),))

    with pytest.raises(ValueError, match="no teacher of seed 5"):
        soft_labels(Wrong(), teachers, 0)


def test_selection_weights_must_match_checkpoints():
    with pytest.raises(ValueError, match="2 weights for 1 checkpoints"):
        Selection((Checkpoint(0, 1),), weights=(1.0, 2.0))
