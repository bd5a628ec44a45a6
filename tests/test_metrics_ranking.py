"""Behaviour of harness.metrics.ranking: sklearn-exact AP, NaN for absent classes, video-wise means."""

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.metrics import average_precision_score

from harness.metrics.ranking import average_precision, frame_map, video_wise_ap, video_wise_map

SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])


def _sklearn_ap_or_nan(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class sklearn AP with an explicit NaN for classes without a positive."""
    return np.array(
        [
            average_precision_score(labels[:, c], scores[:, c]) if labels[:, c].any() else np.nan
            for c in range(labels.shape[1])
        ]
    )


@pytest.mark.parametrize("seed", range(6))
def test_average_precision_equals_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=(60, 5))
    labels[:, 3] = 0  # no positive: NaN here, sklearn's 0 is replaced in the reference
    scores = rng.integers(0, 6, size=(60, 5)) / 5.0  # six score values: many ties
    np.testing.assert_allclose(
        average_precision(labels, scores), _sklearn_ap_or_nan(labels, scores), rtol=0, atol=1e-12
    )


def test_average_precision_accepts_bool_and_float_labels():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=(30, 3))
    scores = rng.random((30, 3))
    expected = average_precision(labels, scores)
    np.testing.assert_array_equal(average_precision(labels.astype(bool), scores), expected)
    np.testing.assert_array_equal(average_precision(labels.astype(np.float32), scores), expected)


def test_average_precision_hand_computed():
    # Ranked 1,0,1,0: positive at rank 1 -> P=1, R=1/2; positive at rank 3 -> P=2/3, R=1.
    # AP = 1/2*1 + 1/2*2/3 = 0.8333...
    labels = np.array([[1], [0], [1], [0]])
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    assert average_precision(labels, scores)[0] == pytest.approx(5 / 6, abs=1e-15)


def test_tied_scores_enter_together():
    # Scores 0.9 | 0.5 0.5 | 0.1 with labels 0 | 1 0 | 1. The tied pair is one threshold:
    # at 0.5, tp=1 of 3 frames -> P=1/3, R=1/2; at 0.1, tp=2 of 4 -> P=1/2, R=1.
    # AP = 1/2*1/3 + 1/2*1/2 = 5/12 (ranking the positive first inside the tie would give 1/2).
    labels = np.array([[0], [1], [0], [1]])
    scores = np.array([[0.9], [0.5], [0.5], [0.1]])
    assert average_precision(labels, scores)[0] == pytest.approx(5 / 12, abs=1e-15)


def test_class_without_positive_is_nan_not_zero():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.3]])
    ap = average_precision(labels, scores)
    assert ap[0] == 1.0
    assert np.isnan(ap[1])


# Two videos, three classes. Video A = frames 0-3, video B = frames 4-6.
#   class 0, A: labels 1,0,1,0 by score -> AP 5/6;  B: labels 0,1,0 by score -> AP 1/2.
#   class 1, A: no positive -> excluded;            B: positive ranked first -> AP 1.
#   class 2: no positive anywhere -> NaN, excluded from the mean.
# video-wise AP = [(5/6 + 1/2) / 2, 1, NaN] = [2/3, 1, NaN]; mAP = (2/3 + 1) / 2 = 5/6.
# (Counting class 1 in A as AP 0 would give 1/2 for it and an mAP of 7/12.)
TWO_VIDEO_LABELS = np.array(
    [[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]]
)
TWO_VIDEO_SCORES = np.array(
    [[0.9, 0.4, 0.1], [0.8, 0.3, 0.2], [0.7, 0.2, 0.3], [0.6, 0.1, 0.4], [0.9, 0.3, 0.5], [0.8, 0.2, 0.6],
     [0.7, 0.1, 0.7]]
)
TWO_VIDEO_IDS = np.array(["A", "A", "A", "A", "B", "B", "B"])


def test_class_absent_from_one_video_is_excluded_there():
    ap = video_wise_ap(TWO_VIDEO_LABELS, TWO_VIDEO_SCORES, TWO_VIDEO_IDS)
    np.testing.assert_allclose(ap[:2], [2 / 3, 1.0], rtol=0, atol=1e-15)
    assert np.isnan(ap[2])


def test_class_absent_everywhere_is_excluded_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = video_wise_map(TWO_VIDEO_LABELS, TWO_VIDEO_SCORES, TWO_VIDEO_IDS)
        all_absent = video_wise_map(np.zeros((4, 2)), np.ones((4, 2)), np.array([0, 0, 1, 1]))
    assert value == pytest.approx(5 / 6, abs=1e-15)
    assert np.isnan(all_absent)


def test_frame_map_pools_frames():
    # Pooled class 0 ranking (scores 0.9,0.9,0.8,0.8,0.7,0.7,0.6) has labels {1,0},{0,1},{1,0},0:
    # at 0.9: tp 1/2, R 1/3; at 0.8: tp 2/4, R 2/3; at 0.7: tp 3/6, R 1 -> AP = 1/2.
    # Pooled class 1: single positive ranked 2nd of 7 (0.4, 0.3, 0.3, ...) with a tie at 0.3:
    # threshold 0.3 takes frames 2-3 -> tp 1/3 -> AP 1/3. Class 2: NaN. frame mAP = (1/2 + 1/3) / 2.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frame_map(TWO_VIDEO_LABELS, TWO_VIDEO_SCORES)
    assert value == pytest.approx(5 / 12, abs=1e-15)


# Three videos, four classes: class 1 is absent from video 0, class 2 occurs only in video 2,
# class 3 never occurs. The scores are random.
IVT_LABELS = [
    np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
    np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]),
    np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]),
]


def _ivtmetrics_video_map(labels_per_video, scores_per_video, num_class):
    ivtmetrics = pytest.importorskip("ivtmetrics")
    saved = np.geterr()
    try:
        recognition = ivtmetrics.Recognition(num_class=num_class)  # calls np.seterr process-wide
        for labels, scores in zip(labels_per_video, scores_per_video):
            recognition.update(labels, scores)
            recognition.video_end()
        return recognition.compute_video_AP("ivt")["mAP"]
    finally:
        np.seterr(**saved)


def test_video_wise_map_matches_protocol_where_ivtmetrics_fails():
    """Documents the ivtmetrics bug of docs/protocols.md section 3.

    ivtmetrics <= 0.1.5 recognises "no positive" classes by the string "-0.0" that scikit-learn < 1.6
    returned for their AP. scikit-learn >= 1.6 clips that AP to +0.0, so ivtmetrics averages a 0 in
    for every (video, class) without a positive and its video-wise mAP drops. Component "ivt" makes
    ivtmetrics use the columns as given, so any number of classes works.
    """
    rng = np.random.default_rng(3)
    scores = [rng.random(labels.shape) for labels in IVT_LABELS]
    per_video = np.stack([_sklearn_ap_or_nan(labels, s) for labels, s in zip(IVT_LABELS, scores)])
    present = ~np.isnan(per_video)
    expected = np.mean(
        [per_video[present[:, c], c].mean() for c in range(per_video.shape[1]) if present[:, c].any()]
    )
    video_ids = np.repeat(np.arange(len(IVT_LABELS)), [len(labels) for labels in IVT_LABELS])

    ours = video_wise_map(np.concatenate(IVT_LABELS), np.concatenate(scores), video_ids)
    assert ours == pytest.approx(expected, abs=1e-12)

    ivt_value = _ivtmetrics_video_map(IVT_LABELS, scores, num_class=4)
    if SKLEARN_VERSION >= (1, 6):
        assert ivt_value != pytest.approx(ours)
        # The whole difference is the zeros: absent (video, class) pairs counted as AP 0.
        assert ivt_value == pytest.approx(np.nan_to_num(per_video, nan=0.0).mean(), abs=1e-12)
    else:
        assert ivt_value == pytest.approx(ours, abs=1e-12)


def test_non_binary_labels_rejected():
    with pytest.raises(ValueError, match=r"labels must be 0/1; found value 0\.5"):
        average_precision(np.array([[1.0], [0.5]]), np.array([[0.2], [0.1]]))
    with pytest.raises(ValueError, match=r"labels must be 0/1; found value 2$"):
        average_precision(np.array([[1], [2]]), np.array([[0.2], [0.1]]))


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match=r"same shape; found \(3, 2\) and \(3, 1\)"):
        average_precision(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"2-D \(frames, classes\) array; found shape \(3,\)"):
        average_precision(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"video_ids must have shape \(3,\), one id per frame; found \(2,\)"):
        video_wise_map(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(2))


def test_non_finite_scores_rejected():
    with pytest.raises(ValueError, match=r"scores must be finite; found value nan"):
        average_precision(np.array([[1], [0]]), np.array([[np.nan], [0.1]]))
