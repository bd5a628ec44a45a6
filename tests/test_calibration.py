"""Temperature scaling on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics.calibration import apply_temperature, fit_temperature, negative_log_likelihood


def test_temperature_one_is_the_identity():
    probs = np.array([[0.2, 0.9]])
    np.testing.assert_array_equal(apply_temperature(probs, 1.0, "multilabel"), probs)


def test_multilabel_temperature_divides_the_logit():
    # sigmoid(logit(0.7) / 0.5) = 0.7^2 / (0.7^2 + 0.3^2)
    out = apply_temperature(np.array([[0.7, 0.3]]), 0.5, "multilabel")
    np.testing.assert_allclose(out, [[0.49 / 0.58, 0.09 / 0.58]])


def test_multiclass_temperature_is_a_power_of_the_probabilities():
    # softmax(log p / 0.5) = p^2 / sum(p^2)
    out = apply_temperature(np.array([[0.6, 0.3, 0.1]]), 0.5, "multiclass")
    np.testing.assert_allclose(out, [[0.36 / 0.46, 0.09 / 0.46, 0.01 / 0.46]])
    assert out.sum() == pytest.approx(1.0)


def test_invalid_temperature_is_rejected():
    with pytest.raises(ValueError, match="positive finite"):
        apply_temperature(np.array([[0.5]]), 0.0, "multilabel")


def test_nll_of_hand_made_predictions():
    assert negative_log_likelihood(np.array([[0.8], [0.4]]), np.array([[1], [0]]), "multilabel") == \
        pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert negative_log_likelihood(np.array([[0.8, 0.2], [0.4, 0.6]]), np.array([0, 0]), "multiclass") == \
        pytest.approx(-(math.log(0.8) + math.log(0.4)) / 2)


def test_fitted_multilabel_temperature_matches_the_positive_rate():
    # every entry says 0.9 and 3 of 4 are positive: the best probability is 0.75, sigmoid(ln 9 / T) = 0.75
    # gives T = ln 9 / ln 3 = 2
    probs, labels = np.full((4, 1), 0.9), np.array([[1], [1], [1], [0]])
    assert fit_temperature(probs, labels, "multilabel") == pytest.approx(2.0, rel=1e-4)


def test_fitted_multiclass_temperature_matches_the_accuracy():
    # top class 0.8 (others 0.1), right on 2 of 4 frames: best top probability 0.5, 8^(1/T) / (8^(1/T) + 2)
    # = 0.5 gives T = 3
    probs = np.tile([0.8, 0.1, 0.1], (4, 1))
    assert fit_temperature(probs, np.array([0, 0, 1, 2]), "multiclass") == pytest.approx(3.0, rel=1e-4)


def test_fitted_temperature_stops_at_the_bounds():
    # always right: sharpening forever lowers the NLL, so the fit stops at the lower bound
    assert fit_temperature(np.full((2, 1), 0.7), np.array([[1], [1]]), "multilabel") == pytest.approx(0.05, rel=1e-4)
