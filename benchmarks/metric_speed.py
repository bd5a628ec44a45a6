"""Time our video-wise triplet AP against ivtmetrics' on the same random data.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/metric_speed.py``. 100,000 frames x 100 triplet
classes over 40 videos, fixed seed. ivtmetrics is timed as a user runs it: ``update`` and
``video_end`` per video, then ``compute_video_AP("ivt")``. If it would take more than about 60 s,
it runs on the first videos only and its time is scaled to all of them (the output says so).
"""

from __future__ import annotations

import time

import numpy as np

from harness.metrics.triplet import triplet_video_ap
from plugins.datasets.cholect45 import triplet_maps

N_FRAMES = 100_000
N_CLASSES = 100
N_VIDEOS = 40
SEED = 0
BUDGET_S = 60.0


def make_data(seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random binary labels (5 % positive), scores and video ids of ``N_FRAMES`` frames."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((N_FRAMES, N_CLASSES)) < 0.05).astype(np.int64)
    scores = rng.random((N_FRAMES, N_CLASSES))
    video_ids = np.sort(rng.integers(0, N_VIDEOS, N_FRAMES))
    return labels, scores, video_ids


def time_ours(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray) -> tuple[float, float]:
    """Seconds for our ivt video-wise AP, and its mAP."""
    start = time.perf_counter()
    result = triplet_video_ap(labels, scores, video_ids, triplet_maps(), component="ivt")
    return time.perf_counter() - start, result["mAP"]


def time_ivtmetrics(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray, videos: np.ndarray) -> tuple[float, float]:
    """Seconds for ivtmetrics on ``videos``, and its mAP; numpy's error state is restored after it."""
    from ivtmetrics.recognition import Recognition

    saved = np.geterr()
    try:
        start = time.perf_counter()
        metric = Recognition(num_class=N_CLASSES)
        for v in videos:
            metric.update(labels[video_ids == v], scores[video_ids == v])
            metric.video_end()
        result = metric.compute_video_AP("ivt")
        return time.perf_counter() - start, float(result["mAP"])
    finally:
        np.seterr(**saved)


def main() -> None:
    labels, scores, video_ids = make_data()
    videos = np.unique(video_ids)
    ours, our_map = time_ours(labels, scores, video_ids)
    probe, _ = time_ivtmetrics(labels, scores, video_ids, videos[:2])
    n_timed = len(videos) if probe / 2 * len(videos) <= BUDGET_S else max(2, int(BUDGET_S / (probe / 2)))
    theirs, their_map = time_ivtmetrics(labels, scores, video_ids, videos[:n_timed])
    scaled = theirs * len(videos) / n_timed
    note = "" if n_timed == len(videos) else f" (timed on {n_timed} of {len(videos)} videos, scaled)"
    print(f"ours {ours:.2f} s, ivtmetrics {scaled:.1f} s{note}, ratio {scaled / ours:.0f}x")
    if n_timed == len(videos):
        print(f"mAP ours {our_map:.12f}, ivtmetrics {their_map:.12f}")


if __name__ == "__main__":
    main()
