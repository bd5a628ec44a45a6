"""Soft-label diagnostics on hand-computed cases, and their storage in the teacher history."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.metrics.diagnostics import binned_calibration_error, diagnose
from harness.train.history import TeacherHistory


def entropy(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


# Confidences 0.7 and 0.72 share bin 10 of 15 ((10/15, 11/15]); 0.5 falls in bin 7, 0.85 in bin 12.
MULTICLASS_PROBS = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.05, 0.1, 0.85], [0.72, 0.28, 0.0]])
MULTICLASS_LABELS = np.array([0, 2, 2, 1])  # right, wrong, right, wrong


def test_multiclass_diagnostics():
    d = diagnose(MULTICLASS_PROBS, MULTICLASS_LABELS, "multiclass")
    assert d["mean_max_prob"] == pytest.approx((0.7 + 0.5 + 0.85 + 0.72) / 4)
    assert d["mean_entropy"] == pytest.approx((entropy(0.7, 0.2, 0.1) + entropy(0.2, 0.5, 0.3)
                                               + entropy(0.05, 0.1, 0.85) + entropy(0.72, 0.28)) / 4)
    # bin 10: accuracy 1/2, confidence 0.71 -> 2/4 * 0.21; bin 7: 1/4 * 0.5; bin 12: 1/4 * 0.15
    assert d["ece"] == pytest.approx((2 * 0.21 + 0.5 + 0.15) / 4)


# Entries 0.9 (positive) and 0.92 (negative) share bin 13; 0.25 is bin 3, 0.62 bin 9.
MULTILABEL_PROBS = np.array([[0.9, 0.25], [0.62, 0.92]])
MULTILABEL_LABELS = np.array([[1, 0], [0, 0]])


def test_multilabel_diagnostics():
    d = diagnose(MULTILABEL_PROBS, MULTILABEL_LABELS, "multilabel")
    assert d["mean_max_prob"] == pytest.approx((0.9 + 0.75 + 0.62 + 0.92) / 4)
    assert d["mean_entropy"] == pytest.approx((entropy(0.9, 0.1) + entropy(0.25, 0.75) + entropy(0.62, 0.38)
                                               + entropy(0.92, 0.08)) / 4)
    # bin 13: positive rate 1/2, mean probability 0.91 -> 2/4 * 0.41; bin 3: 1/4 * 0.25; bin 9: 1/4 * 0.62
    assert d["ece"] == pytest.approx((2 * 0.41 + 0.25 + 0.62) / 4)


def test_calibrated_probabilities_have_zero_ece():
    probs, labels = np.full((4, 1), 0.25), np.array([[1], [0], [0], [0]])
    assert diagnose(probs, labels, "multilabel")["ece"] == pytest.approx(0.0)


def test_bins_include_zero_and_one():
    assert binned_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == 0.0


def test_empty_validation_set_gives_nan_and_unknown_task_is_an_error():
    assert all(math.isnan(v) for v in diagnose(np.zeros((0, 3)), np.zeros(0), "multiclass").values())
    with pytest.raises(ValueError, match="unknown task 'regression'"):
        diagnose(MULTICLASS_PROBS, MULTICLASS_LABELS, "regression")


def test_history_stores_diagnostics_per_epoch(make_history):
    # make_history: probability c on every true label and 1 - c elsewhere, validation = training frames
    history = make_history(0, [0.8, 0.6], [0.5, 0.6])
    stored = json.loads((history.directory / "history.json").read_text())["epochs"][0]["diagnostics"]
    assert stored == pytest.approx({"mean_max_prob": 0.8, "mean_entropy": entropy(0.8, 0.2), "ece": 0.2})
    assert history.diagnostics(2)["mean_max_prob"] == pytest.approx(0.6)


def test_old_history_without_diagnostics_loads_and_computes_them(make_history):
    history = make_history(0, [0.8], [0.5])
    path = history.directory / "history.json"
    meta = json.loads(path.read_text())
    for record in meta["epochs"]:
        del record["diagnostics"]
    path.write_text(json.dumps(meta))
    old = TeacherHistory(history.directory)
    assert old.record(1).diagnostics == {}
    assert old.diagnostics(1) == pytest.approx({"mean_max_prob": 0.8, "mean_entropy": entropy(0.8, 0.2), "ece": 0.2})
