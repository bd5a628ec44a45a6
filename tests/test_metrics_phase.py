"""Behaviour of harness.metrics.phase: strict video-wise phase recognition metrics."""

import warnings

import numpy as np
import pytest

from harness.metrics.phase import RELAXED_VARIANTS, phase_scores, relaxed_phase_scores

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


# Relaxed boundaries (Evaluate.m). fps 0.2 gives a 2-frame window (10 s * 0.2 fps).
def test_previous_phase_predicted_at_segment_start_is_correct_when_relaxed():
    # gt 0 0 0 0 1 1 1 1, pred 0 0 0 0 0 1 1 1: d = -1 in the first window of phase 1's segment -> zeroed.
    # Every frame is then correct. Phase 0: U = frames 0-4, tp 5: J 1, P 5/5, R 5/4 -> clipped to 1.
    # Phase 1: U = frames 4-7, tp 4: J 1, P 4/3 -> 1, R 1. Strict accuracy is 7/8.
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predictions = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    videos = np.zeros(8)
    assert phase_scores(labels, predictions, videos, 2)["accuracy"] == 7 / 8
    for variant in RELAXED_VARIANTS:
        assert relaxed_phase_scores(labels, predictions, videos, 2, fps=0.2, variant=variant) == {
            "accuracy": 1.0, "precision": 1.0, "recall": 1.0, "jaccard": 1.0, "f1": 1.0
        }


def test_next_phase_predicted_at_segment_end_is_correct_only_in_the_intended_variant():
    # gt 0 0 0 0 1 1 1 1, pred 0 0 0 1 1 1 1 1: d = +1 at frame 3, the last window of phase 0's segment.
    # intended: frame 3 zeroed, all correct (phase 1: U = frames 3-7, tp 5, R 5/4 -> 1) -> all 1.
    # script: the mask [d2 == 1, d3 == 1] = [F, T] selects frame 1 (already 0), frame 3 stays wrong:
    # the same as strict, accuracy 7/8 (F1 differs: relaxed F1 is the harmonic mean of P and R).
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predictions = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    videos = np.zeros(8)
    intended = relaxed_phase_scores(labels, predictions, videos, 2, fps=0.2, variant="intended")
    assert intended == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "jaccard": 1.0, "f1": 1.0}
    script = relaxed_phase_scores(labels, predictions, videos, 2, fps=0.2, variant="script")
    strict = phase_scores(labels, predictions, videos, 2)
    del strict["f1"]
    assert {name: script[name] for name in strict} == pytest.approx(strict, abs=1e-15)


def test_script_quirk_zeroes_segment_start_frames_hand_computed():
    # gt   0 0 0 0 1 1 1 1 2 2
    # pred 2 0 1 0 1 1 1 1 2 2     phase-0 segment d = [2, 0, 1, 0], window 2; other segments exact.
    # End rule mask = [d2 == 1, d3 == 1] = [T, F].
    #   intended: zeroes frame 2 (an early phase 1); frame 0 (d = 2) stays wrong.
    #   script: zeroes frame 0 (the first of the first t frames), frame 2 stays wrong.
    # Accuracy 9/10 in both. U0 = {0..3}, U1 = {2, 4..7}, U2 = {0, 8, 9}; #pred 2, 5, 3; #gt 4, 4, 2.
    #   script   (frame 2 wrong): tp 3, 4, 3 -> J 3/4, 4/5, 1;   P 3/2->1, 4/5, 1;   R 3/4, 1, 3/2->1
    #            J 17/20, P 14/15, R 11/12, F1 2 P R / (P + R) = 308/333
    #   intended (frame 0 wrong): tp 3, 5, 2 -> J 3/4, 1, 2/3;   P 3/2->1, 1, 2/3;   R 3/4, 5/4->1, 1
    #            J 29/36, P 8/9,   R 11/12, F1 = 176/195
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    predictions = np.array([2, 0, 1, 0, 1, 1, 1, 1, 2, 2])
    videos = np.zeros(10)
    script = relaxed_phase_scores(labels, predictions, videos, 3, fps=0.2, variant="script")
    assert script == pytest.approx(
        {"accuracy": 9 / 10, "precision": 14 / 15, "recall": 11 / 12, "jaccard": 17 / 20, "f1": 308 / 333}, abs=1e-15
    )
    intended = relaxed_phase_scores(labels, predictions, videos, 3, fps=0.2, variant="intended")
    assert intended == pytest.approx(
        {"accuracy": 9 / 10, "precision": 8 / 9, "recall": 11 / 12, "jaccard": 29 / 36, "f1": 176 / 195}, abs=1e-15
    )


def test_phase_specific_allowances():
    # 7 phases, window 2 frames. Segment of phase 3 (0-based) then phase 5, skipping phase 4.
    # gt 3 3 3 3 5 5 5 5, pred 3 3 3 5 3 5 5 5: d = +2 at the end of phase 3 (allowed for 0-based 3, 4)
    # and d = -2 at the start of phase 5 (allowed for 0-based 5, 6): everything is correct when relaxed.
    labels = np.array([3, 3, 3, 3, 5, 5, 5, 5])
    predictions = np.array([3, 3, 3, 5, 3, 5, 5, 5])
    assert relaxed_phase_scores(labels, predictions, np.zeros(8), 7, fps=0.2, variant="intended")["accuracy"] == 1.0
    # The same shifts between phases 0 and 2 are not forgiven: 2 of 8 frames wrong.
    assert relaxed_phase_scores(labels - 3, predictions - 3, np.zeros(8), 7, fps=0.2, variant="intended")[
        "accuracy"
    ] == 6 / 8


def test_relaxed_means_over_phases_as_the_script():
    # Two videos, 3 phases, fps 0.1 (window 1 frame); phase 2 occurs in no ground truth.
    # Video A: gt 0 0 1 1, pred 0 0 2 0. Phase-1 segment d = [+1, -1]: +1 is no start allowance and -1 no
    #   end allowance, so frames 2 and 3 stay wrong; accuracy 2/4.
    #   Phase 0: U = {0, 1, 3}, tp 2 -> P 2/3, R 2/2, J 2/3. Phase 1: never predicted, tp 0 -> P 0/0 = NaN,
    #   R 0, J 0. Phase 2: absent from gt -> NaN although predicted.
    # Video B: gt 0 0, pred 0 0 -> accuracy 1; phase 0: P, R, J 1.
    # Over videos: phase 0 P 5/6, R 1, J 5/6; phase 1 P NaN, R 0, J 0; phase 2 NaN.
    # precision = nanmean over phases = 5/6; recall and jaccard = plain mean -> NaN (phase 2); F1 NaN.
    scores = relaxed_phase_scores(
        np.array([0, 0, 1, 1, 0, 0]), np.array([0, 0, 2, 0, 0, 0]), np.array([0, 0, 0, 0, 1, 1]), 3, fps=0.1
    )
    assert scores["accuracy"] == pytest.approx(3 / 4, abs=1e-15)
    assert scores["precision"] == pytest.approx(5 / 6, abs=1e-15)
    assert np.isnan(scores["recall"]) and np.isnan(scores["jaccard"]) and np.isnan(scores["f1"])


def test_relaxed_rejects_bad_variant_and_fractional_window():
    with pytest.raises(ValueError, match="variant must be one of script, intended"):
        relaxed_phase_scores(np.array([0]), np.array([0]), np.zeros(1), 1, variant="matlab")
    with pytest.raises(ValueError, match="10 \\* fps must be a positive whole number"):
        relaxed_phase_scores(np.array([0]), np.array([0]), np.zeros(1), 1, fps=0.25)
