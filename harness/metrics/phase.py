"""Video-wise phase recognition metrics, **strict** protocol (no relaxed phase boundaries).

Each video is scored on its own frames: accuracy, and per phase precision, recall, Jaccard and F1.
A phase absent from a video's ground truth is NaN for all four in that video, even if predicted
there, so it does not count. Per-phase values are then averaged over videos (ignoring NaN) and
over phases (ignoring NaN); accuracy is the mean of per-video accuracies, not the pooled accuracy.
:func:`relaxed_phase_scores` is the relaxed-boundary protocol of the MATLAB ``Evaluate.m`` script
(docs/protocols.md section 4); report it apart from the strict scores and say which is which.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["RELAXED_VARIANTS", "phase_scores", "relaxed_phase_scores"]

_PER_PHASE = ("precision", "recall", "jaccard", "f1")
RELAXED_VARIANTS = ("script", "intended")
_RELAX_SECONDS = 10


def phase_scores(
    labels: np.ndarray, predictions: np.ndarray, video_ids: np.ndarray, num_classes: int
) -> dict[str, float]:
    """Strict video-wise accuracy, precision, recall, Jaccard and F1 of per-frame phase predictions.

    ``labels``, ``predictions`` and ``video_ids`` are (N,) arrays, one entry per frame; labels and
    predictions are class indices in ``[0, num_classes)``.
    """
    gt, pred, vids = _check_phases(labels, predictions, video_ids, num_classes)
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


def relaxed_phase_scores(
    labels: np.ndarray,
    predictions: np.ndarray,
    video_ids: np.ndarray,
    num_classes: int,
    fps: float = 1.0,
    variant: str = "script",
) -> dict[str, float]:
    """Video-wise phase scores with the relaxed boundaries of the Cholec80 ``Evaluate.m`` script.

    Rules, per video, per ground-truth segment (a maximal run of one phase), with a window of
    ``t = 10 * fps`` frames, shortened to the segment's length if the segment is shorter. ``d`` is
    prediction minus ground truth; a frame is correct when its ``d`` is 0 after relaxation:

    - start of the segment: in its first t frames, d = -1 (the previous phase still predicted) is
      set to 0; for phases 6 and 7 (1-based; 0-based 5 and 6) d = -2 too;
    - end of the segment: in its last t frames, d = +1 (the next phase already predicted) counts as
      0; for phases 4 to 7 (0-based 3 to 6) d = +2 too. The end rule reads d after the start rule.
      ``variant="intended"`` zeroes those last-t frames. ``variant="script"`` reproduces the
      published line ``curDiff(curDiff(end-t+1:end)==1) = 0``: a logical index shorter than the
      array selects among its first t elements, so frame i of the segment's start (i < t) is
      zeroed, whatever its d, when frame ``len - t + i`` has an allowed d; the end frames keep their
      d. The two agree when t equals the segment length. Published numbers come from "script".

    Per phase present in the video's ground truth (NaN otherwise), with U the frames where the
    ground truth or the prediction is that phase and tp the correct frames of U (a relaxed frame
    counts for both phases involved): Jaccard tp/|U|, precision tp/#predicted (NaN for 0/0, and
    above 1 possible), recall tp/#ground truth; each clipped to 1. Accuracy: fraction of correct
    frames. Then, as the script's main file does: per phase the mean over videos ignoring NaN;
    Jaccard and recall are the plain mean over phases (NaN if a phase is absent from every video),
    precision the mean ignoring NaN; accuracy the mean over videos. The script has no F1: "f1" here
    is the harmonic mean of the returned precision and recall.

    The phase-specific allowances assume Cholec80's canonical phase order (docs/protocols.md section 4).
    """
    if variant not in RELAXED_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(RELAXED_VARIANTS)}; found {variant!r}")
    window = _relax_window(fps)
    gt, pred, vids = _check_phases(labels, predictions, video_ids, num_classes)
    accuracies, per_video = [], []
    for v in np.unique(vids):
        in_video = vids == v
        correct = _relaxed_correct(gt[in_video], pred[in_video], window, variant)
        accuracies.append(correct.mean())
        per_video.append(_relaxed_per_phase(gt[in_video], pred[in_video], correct, num_classes))
    stacked = {name: np.stack([video[name] for video in per_video]) for name in ("precision", "recall", "jaccard")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" for phases absent everywhere
        per_phase = {name: np.nanmean(values, axis=0) for name, values in stacked.items()}
        precision = float(np.nanmean(per_phase["precision"]))
    recall = float(np.mean(per_phase["recall"]))
    return {
        "accuracy": float(np.mean(accuracies)),
        "precision": precision,
        "recall": recall,
        "jaccard": float(np.mean(per_phase["jaccard"])),
        "f1": _harmonic_mean(precision, recall),
    }


def _harmonic_mean(precision: float, recall: float) -> float:
    """F1 of a precision and a recall: 0 when both are 0, NaN when either is NaN."""
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _relax_window(fps: float) -> int:
    """Frames in the 10-second relaxation window; the script indexes with it, so it must be whole."""
    window = _RELAX_SECONDS * fps
    if not window > 0 or window != round(window):
        raise ValueError(f"10 * fps must be a positive whole number of frames; found fps={fps!r}")
    return int(round(window))


def _allowed_shifts(phase: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Prediction-minus-truth values forgiven at the start and at the end of a segment of ``phase`` (0-based)."""
    if phase in (3, 4):
        return (-1,), (1, 2)
    if phase in (5, 6):
        return (-1, -2), (1, 2)
    return (-1,), (1,)


def _relaxed_correct(gt: np.ndarray, pred: np.ndarray, window: int, variant: str) -> np.ndarray:
    """Per frame of one video, whether the prediction counts as correct under relaxed boundaries."""
    diff = pred - gt
    boundaries = np.flatnonzero(np.diff(gt)) + 1
    for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, len(gt)]):
        segment = diff[start:end]  # a view: edits land in diff
        t = min(window, len(segment))
        at_start, at_end = _allowed_shifts(int(gt[start]))
        head = segment[:t]
        head[np.isin(head, at_start)] = 0
        end_allowed = np.isin(segment[-t:], at_end)
        if variant == "script":
            head[end_allowed] = 0
        else:
            segment[-t:][end_allowed] = 0
    return diff == 0


def _relaxed_per_phase(
    gt: np.ndarray, pred: np.ndarray, correct: np.ndarray, num_classes: int
) -> dict[str, np.ndarray]:
    """Clipped per-phase precision, recall and Jaccard of one video (NaN for phases absent from ``gt``)."""
    n_gt = np.bincount(gt, minlength=num_classes).astype(np.float64)
    n_pred = np.bincount(pred, minlength=num_classes).astype(np.float64)
    both = gt == pred
    n_both = np.bincount(gt[both], minlength=num_classes)
    # Correct frames of each phase's union of ground truth and prediction, counted once when both agree.
    tp = (np.bincount(gt[correct], minlength=num_classes) + np.bincount(pred[correct], minlength=num_classes)
          - np.bincount(gt[correct & both], minlength=num_classes)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"precision": tp / n_pred, "recall": tp / n_gt, "jaccard": tp / (n_gt + n_pred - n_both)}
    absent = n_gt == 0
    # np.minimum keeps NaN (0/0) and turns the +inf of tp/0 into 1, as the script's clip to 100 does.
    return {name: np.where(absent, np.nan, np.minimum(value, 1.0)) for name, value in values.items()}


def _check_phases(labels: np.ndarray, predictions: np.ndarray, video_ids: np.ndarray,
                  num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return labels and predictions as int64 (N,) arrays and the video ids, or raise ValueError saying
    what is wrong."""
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
    vids = np.asarray(video_ids)
    if vids.shape != gt.shape:
        raise ValueError(f"video_ids must have shape {gt.shape}, one id per frame; found {vids.shape}")
    if len(gt) == 0:
        raise ValueError("cannot score phases of zero frames")
    return gt, pred, vids
