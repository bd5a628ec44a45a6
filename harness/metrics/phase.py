"""Video-wise phase recognition metrics, **strict** protocol (no relaxed phase boundaries).

Each video is scored on its own frames: accuracy, and per phase precision, recall, Jaccard and F1.
A phase absent from a video's ground truth is NaN for all four in that video, even if predicted
there, so it does not count. Per-phase values are then averaged over videos (ignoring NaN) and
over phases (ignoring NaN); accuracy is the mean of per-video accuracies, not the pooled accuracy.
The relaxed-boundary variants of the MATLAB ``Evaluate.m`` script (REFERENCE.md section 4) are
not implemented here.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["phase_scores"]

_PER_PHASE = ("precision", "recall", "jaccard", "f1")


def phase_scores(
    labels: np.ndarray, predictions: np.ndarray, video_ids: np.ndarray, num_classes: int
) -> dict[str, float]:
    """Strict video-wise accuracy, precision, recall, Jaccard and F1 of per-frame phase predictions.

    ``labels``, ``predictions`` and ``video_ids`` are (N,) arrays, one entry per frame; labels and
    predictions are class indices in ``[0, num_classes)``.
    """
    gt, pred = _check_phases(labels, predictions, num_classes)
    vids = np.asarray(video_ids)
    if vids.shape != gt.shape:
        raise ValueError(f"video_ids must have shape {gt.shape}, one id per frame; found {vids.shape}")
    if len(gt) == 0:
        raise ValueError("cannot score phases of zero frames")
    videos = [_video_scores(gt[vids == v], pred[vids == v], num_classes) for v in np.unique(vids)]
    result = {"accuracy": float(np.mean([accuracy for accuracy, _ in videos]))}
    for name in _PER_PHASE:
        per_video = np.stack([per_phase[name] for _, per_phase in videos])
        result[name] = _mean_over_videos_then_phases(per_video)
    return result


def _video_scores(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[float, dict[str, np.ndarray]]:
    """Frame accuracy of one video, and its per-phase metrics (NaN for phases absent from ``gt``)."""
    hits = gt == pred
    tp = np.bincount(gt[hits], minlength=num_classes).astype(np.float64)
    n_gt = np.bincount(gt, minlength=num_classes).astype(np.float64)
    n_pred = np.bincount(pred, minlength=num_classes).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A phase present in the ground truth but never predicted has precision 0, not 0/0.
        precision = np.where(n_pred > 0, tp / n_pred, 0.0)
        recall = tp / n_gt
        jaccard = tp / (n_gt + n_pred - tp)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    absent = n_gt == 0
    per_phase = {
        name: np.where(absent, np.nan, values)
        for name, values in zip(_PER_PHASE, (precision, recall, jaccard, f1))
    }
    return float(hits.mean()), per_phase


def _mean_over_videos_then_phases(per_video: np.ndarray) -> float:
    """Mean over videos (axis 0), then over phases, each ignoring NaN; NaN if nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" for all-NaN phases
        return float(np.nanmean(np.nanmean(per_video, axis=0)))


def _check_phases(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and predictions as int64 (N,) arrays, or raise ValueError saying what is wrong."""
    checked = []
    for name, values in (("labels", labels), ("predictions", predictions)):
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of class indices; found shape {array.shape}")
        with np.errstate(invalid="ignore"):  # NaN/inf cast; reported as a bad value below
            as_int = array.astype(np.int64)
        bad = (as_int != array) | (as_int < 0) | (as_int >= num_classes)
        if bad.any():
            raise ValueError(
                f"{name} must be integer class indices in [0, {num_classes}); found value {array[bad][0].item()!r}"
            )
        checked.append(as_int)
    gt, pred = checked
    if gt.shape != pred.shape:
        raise ValueError(f"labels and predictions must have the same shape; found {gt.shape} and {pred.shape}")
    return gt, pred
