"""Ranking metrics for multi-label recognition: per-class average precision and its means.

Average precision follows scikit-learn's ``average_precision_score`` exactly (step-wise sum of
precision times recall increments over distinct score thresholds, no interpolation), but a class
with no positive gets NaN instead of 0. That NaN is what the video-wise protocol relies on: a
class absent from a video must be left out of that video's contribution, not counted as AP 0
(the ivtmetrics + scikit-learn >= 1.6 bug, see docs/protocols.md section 3).
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision", "frame_map", "video_wise_ap", "video_wise_map"]


def average_precision(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class average precision of ``scores`` (N, C) against binary ``labels`` (N, C).

    Returns a (C,) float64 array; NaN for a class with no positive frame.
    """
    return _average_precision(*_check_label_scores(labels, scores))


def _average_precision(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """:func:`average_precision` on labels and scores already validated by :func:`_check_label_scores`."""
    n_frames, n_classes = y.shape
    if n_frames == 0:
        return np.full(n_classes, np.nan)
    order = np.argsort(-s, axis=0)  # order within ties is irrelevant: only the last of a tie counts
    s_sorted = np.take_along_axis(s, order, axis=0)
    true_pos = np.cumsum(np.take_along_axis(y, order, axis=0), axis=0)
    # A threshold is the last frame of a run of tied scores: tied frames enter together.
    is_threshold = np.ones_like(s_sorted, dtype=bool)
    is_threshold[:-1] = s_sorted[:-1] != s_sorted[1:]
    recall_gain = _gain_since_previous_threshold(true_pos, is_threshold)
    precision = true_pos / np.arange(1, n_frames + 1)[:, None]
    n_pos = true_pos[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.sum(recall_gain * precision, axis=0) / n_pos
    ap[n_pos == 0] = np.nan
    return ap


def video_wise_ap(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
    """Per-class AP computed in each video, then averaged over the videos where the class occurs.

    Returns (C,) float64; NaN for a class with no positive in any video.
    """
    y, s = _check_label_scores(labels, scores)
    vids = _check_video_ids(video_ids, len(y))
    if len(y) == 0:
        return np.full(y.shape[1], np.nan)
    per_video = np.stack([_average_precision(y[vids == v], s[vids == v]) for v in np.unique(vids)])
    return _nanmean(per_video, axis=0)


def video_wise_map(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> float:
    """Mean over classes of :func:`video_wise_ap`, ignoring NaN classes (NaN if all are NaN)."""
    return float(_nanmean(video_wise_ap(labels, scores, video_ids), axis=0))


def frame_map(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean over classes of AP on all frames pooled, ignoring classes with no positive."""
    return float(_nanmean(average_precision(labels, scores), axis=0))


def _gain_since_previous_threshold(true_pos: np.ndarray, is_threshold: np.ndarray) -> np.ndarray:
    """True positives added at each threshold since the previous one (0 off-threshold)."""
    at_threshold = np.where(is_threshold, true_pos, 0.0)
    # true_pos never decreases, so a running max of the threshold values is the latest one.
    previous = np.zeros_like(true_pos)
    previous[1:] = np.maximum.accumulate(at_threshold, axis=0)[:-1]
    return np.where(is_threshold, true_pos - previous, 0.0)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the "Mean of empty slice" warning: all-NaN slices give NaN."""
    present = ~np.isnan(values)
    total = np.where(present, values, 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / present.sum(axis=axis)


def _check_label_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return labels as int32 and scores as float64 (N, C) arrays, or raise ValueError saying what is wrong."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"labels must be a 2-D (frames, classes) array; found shape {y.shape}")
    if y.shape != s.shape:
        raise ValueError(f"labels and scores must have the same shape; found {y.shape} and {s.shape}")
    not_binary = (y != 0) & (y != 1)
    if not_binary.any():
        raise ValueError(f"labels must be 0/1; found value {y[not_binary][0].item()!r}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; found value {s[~np.isfinite(s)][0].item()!r}")
    return y.astype(np.int32), s


def _check_video_ids(video_ids: np.ndarray, n_frames: int) -> np.ndarray:
    vids = np.asarray(video_ids)
    if vids.shape != (n_frames,):
        raise ValueError(f"video_ids must have shape ({n_frames},), one id per frame; found {vids.shape}")
    return vids
