"""Behaviour of harness.metrics.phase: strict video-wise phase recognition metrics."""

import warnings

import numpy as np
import pytest

from harness.metrics.phase import phase_scores

# Two videos of unequal length, three phases.
#   Video A: gt 0 0 1 1, pred 0 1 1 2 -> accuracy 2/4.
#     phase 0: tp 1, gt 2, pred 1 -> P 1,   R 1/2, J 1/(2+1-1) = 1/2, F1 2/3
#     phase 1: tp 1, gt 2, pred 2 -> P 1/2, R 1/2, J 1/(2+2-1) = 1/3, F1 1/2
#     phase 2: predicted once but absent from gt -> NaN (would be 0 if it counted)
#   Video B: gt 2 2 2, pred 2 2 0 -> accuracy 2/3.
#     phase 2: tp 2, gt 3, pred 2 -> P 1, R 2/3, J 2/(3+2-2) = 2/3, F1 4/5
#     phase 0: predicted but absent from gt -> NaN; phase 1 absent -> NaN
# Each phase is present in one video only, so the mean over videos is that video's value.
#   accuracy  = (1/2 + 2/3) / 2 = 7/12   (pooled would be 4/7)
#   precision = (1 + 1/2 + 1) / 3 = 5/6
#   recall    = (1/2 + 1/2 + 2/3) / 3 = 5/9
#   jaccard   = (1/2 + 1/3 + 2/3) / 3 = 1/2
#   f1        = (2/3 + 1/2 + 4/5) / 3 = 59/90
LABELS = np.array([0, 0, 1, 1, 2, 2, 2])
PREDICTIONS = np.array([0, 1, 1, 2, 2, 2, 0])
VIDEO_IDS = np.array([7, 7, 7, 7, 9, 9, 9])


def test_two_video_hand_computed():
    scores = phase_scores(LABELS, PREDICTIONS, VIDEO_IDS, num_classes=3)
    assert scores == pytest.approx(
        {"accuracy": 7 / 12, "precision": 5 / 6, "recall": 5 / 9, "jaccard": 1 / 2, "f1": 59 / 90}, abs=1e-15
    )


def test_accuracy_is_mean_of_video_accuracies_not_pooled():
    accuracy = phase_scores(LABELS, PREDICTIONS, VIDEO_IDS, num_classes=3)["accuracy"]
    assert accuracy == pytest.approx(7 / 12, abs=1e-15)
    assert accuracy != pytest.approx(np.mean(LABELS == PREDICTIONS))


def test_phase_mean_over_videos_where_present():
    # Phase 0 is in both videos: A gt 0 0 1, pred 0 1 1 -> R 1/2; B gt 0 0 0 0, pred 0 0 0 0 -> R 1.
    # Phase 1 only in A: R 1. recall = ((1/2 + 1) / 2 + 1) / 2 = 7/8.
    scores = phase_scores(
        np.array([0, 0, 1, 0, 0, 0, 0]), np.array([0, 1, 1, 0, 0, 0, 0]), np.array([0, 0, 0, 1, 1, 1, 1]), 2
    )
    assert scores["recall"] == pytest.approx(7 / 8, abs=1e-15)


def test_phase_in_gt_never_predicted_has_precision_zero():
    # gt 0 0 1, pred 0 0 0: phase 0 P 2/3, R 1, J 2/3, F1 4/5; phase 1 P 0 (not 0/0 = NaN), R 0, J 0, F1 0.
    scores = phase_scores(np.array([0, 0, 1]), np.array([0, 0, 0]), np.zeros(3), num_classes=2)
    assert scores == pytest.approx(
        {"accuracy": 2 / 3, "precision": 1 / 3, "recall": 1 / 2, "jaccard": 1 / 3, "f1": 2 / 5}, abs=1e-15
    )


def test_perfect_prediction_scores_one_and_unused_phases_are_ignored_quietly():
    labels = np.array([0, 0, 1, 3, 3, 1, 1, 6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = phase_scores(labels, labels.copy(), np.array([1, 1, 1, 1, 2, 2, 2, 2]), num_classes=7)
    assert scores == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "jaccard": 1.0, "f1": 1.0}


def test_invalid_inputs_rejected():
    with pytest.raises(ValueError, match=r"labels must be integer class indices in \[0, 3\); found value 3"):
        phase_scores(np.array([0, 3]), np.array([0, 1]), np.zeros(2), num_classes=3)
    with pytest.raises(ValueError, match=r"predictions must be integer class indices in \[0, 3\); found value 1\.5"):
        phase_scores(np.array([0, 1]), np.array([0, 1.5]), np.zeros(2), num_classes=3)
    with pytest.raises(ValueError, match=r"same shape; found \(2,\) and \(3,\)"):
        phase_scores(np.array([0, 1]), np.array([0, 1, 1]), np.zeros(2), num_classes=3)
    with pytest.raises(ValueError, match=r"video_ids must have shape \(2,\), one id per frame; found \(3,\)"):
        phase_scores(np.array([0, 1]), np.array([0, 1]), np.zeros(3), num_classes=3)
