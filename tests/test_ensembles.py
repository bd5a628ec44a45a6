"""The weighted, sharpened and calibrated window ensembles on hand-made histories."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.hooks.registry import get_registry
from harness.science.strategy import Checkpoint, Selection, Strategy, soft_labels
from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory

# The histories of test_strategies: both seeds' windows are epochs 3, 4, 5, with true-label confidences
# 0.6, 0.7, 0.8 (seed 0) and 0.8, 0.7, 0.6 (seed 1); validation scores 0.58 0.60 0.59 and 0.59 0.60 0.58.
CONFIDENCE = [0.30, 0.45, 0.60, 0.70, 0.80, 0.90, 0.95]
VAL = [0.10, 0.30, 0.58, 0.60, 0.59, 0.62, 0.50]
WINDOW = tuple(Checkpoint(s, e) for s in (0, 1) for e in (3, 4, 5))


def strategy(name: str, **params) -> Strategy:
    return get_registry().get("strategy", name).factory(**params)


@pytest.fixture
def teachers(make_history):
    return {0: make_history(0, CONFIDENCE, VAL), 1: make_history(1, CONFIDENCE[::-1], VAL[::-1])}


def expected_soft(labels: np.ndarray, true_prob: float) -> np.ndarray:
    return np.where(labels == 1, true_prob, 1 - true_prob)


def test_weighted_ensemble_weights_by_softmax_of_validation_scores(teachers):
    selection, soft = soft_labels(strategy("iese-weighted", tau=0.01, window="band"), teachers, 0)
    assert selection.checkpoints == WINDOW
    # exp((val - 0.60) / 0.01) per checkpoint: seed 0 e^-2, 1, e^-1; seed 1 e^-1, 1, e^-2
    np.testing.assert_allclose(selection.weights, [math.exp(-2), 1, math.exp(-1), math.exp(-1), 1, math.exp(-2)])
    true_prob = (2 * math.exp(-2) * 0.6 + 2 * 0.7 + 2 * math.exp(-1) * 0.8) / (2 * (math.exp(-2) + 1 + math.exp(-1)))
    np.testing.assert_allclose(soft, expected_soft(teachers[0].train_labels, true_prob), rtol=1e-6)


def test_weighted_ensemble_with_large_tau_is_the_plain_mean(teachers):
    _, soft = soft_labels(strategy("iese-weighted", tau=1e6, window="band"), teachers, 0)
    np.testing.assert_allclose(soft, expected_soft(teachers[0].train_labels, 0.7), rtol=1e-5)


def test_sharpened_ensemble_squares_the_odds_at_temperature_one_half(teachers):
    selection, soft = soft_labels(strategy("iese-sharpened", window="band"), teachers, 1)
    assert selection.checkpoints == WINDOW and selection.temperature == 0.5
    assert selection.describe().endswith("T=0.5")
    # IESE mean 0.7 on true labels; sigmoid(logit(0.7) / 0.5) = 0.49 / (0.49 + 0.09)
    np.testing.assert_allclose(soft, expected_soft(teachers[0].train_labels, 0.49 / 0.58), rtol=1e-6)


def test_sharpened_multiclass_rows_still_sum_to_one(make_history):
    labels = np.array([0, 2, 1, 2])
    teachers = {0: make_history(0, [0.6], [0.5], labels=labels, task="multiclass")}
    _, soft = soft_labels(strategy("iese-sharpened", temperature=0.5, epochs=[1]), teachers, 0)
    # true class 0.6, the two others 0.2: squared and normalised 0.36 / 0.44 and 0.04 / 0.44
    np.testing.assert_allclose(soft[np.arange(4), labels], 0.36 / 0.44, rtol=1e-6)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)


def one_epoch_history(directory: Path, task: str, train_probs, val_probs, val_labels) -> TeacherHistory:
    train_probs = np.asarray(train_probs, dtype=np.float32)
    train_labels = np.zeros(len(train_probs), dtype=np.int64) if task == "multiclass" else \
        (train_probs > 0.5).astype(np.uint8)
    writer = HistoryWriter(directory, 0, task, "mAP", train_labels, np.asarray(val_labels))
    writer.add_epoch(EpochRecord(1, 1.0, {"mAP": 0.5}), train_probs, np.asarray(val_probs, dtype=np.float32))
    return TeacherHistory(directory)


def test_calibrated_ensemble_fits_the_temperature_on_validation(tmp_path: Path):
    # validation: every entry says 0.9 but only 3 of 4 are positive -> T = ln 9 / ln 3 = 2, which maps the
    # training probabilities 0.9 and 0.1 to 0.75 and 0.25
    history = one_epoch_history(tmp_path, "multilabel", [[0.9], [0.1]], np.full((4, 1), 0.9), [[1], [1], [1], [0]])
    selection, soft = soft_labels(strategy("iese-calibrated", epochs=[1]), {0: history}, 0)
    assert selection.temperature == pytest.approx(2.0, rel=1e-4)
    assert "temperature 2.000 fitted on the validation frames" in selection.note
    np.testing.assert_allclose(soft, [[0.75], [0.25]], rtol=1e-4)


def test_calibrated_ensemble_multiclass(tmp_path: Path):
    # top class 0.8 right on 2 of 4 validation frames -> T = 3; training row (0.8, 0.1, 0.1) -> (0.5, .25, .25)
    history = one_epoch_history(tmp_path, "multiclass", [[0.8, 0.1, 0.1]], np.tile([0.8, 0.1, 0.1], (4, 1)),
                                [0, 0, 1, 2])
    _, soft = soft_labels(strategy("iese-calibrated", epochs=[1]), {0: history}, 0)
    np.testing.assert_allclose(soft, [[0.5, 0.25, 0.25]], rtol=1e-4)


@pytest.mark.parametrize("name, params, message", [
    ("iese-weighted", {"tau": 0}, "tau must be positive"),
    ("iese-sharpened", {"temperature": -1}, "temperature must be positive"),
    ("iese-calibrated", {"low": 0.9, "high": 0.1}, "low <= high"),
])
def test_invalid_parameters_are_rejected(name, params, message):
    with pytest.raises(ValueError, match=message):
        strategy(name, **params)


def test_selection_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature must be positive"):
        Selection((Checkpoint(0, 1),), temperature=0.0)


def test_a_bad_parameter_in_the_config_names_the_strategy(tmp_path):
    from harness.config import load_config
    from harness.errors import ConfigError
    from harness.runs.plan import Plan

    config = load_config(overrides={"strategies": ["iese-weighted"], "strategy_params": {"iese-weighted": {"tau": -1}}})
    with pytest.raises(ConfigError, match=r"strategy_params.iese-weighted: tau must be positive, got -1"):
        Plan(config, get_registry()).resolve_strategies()
