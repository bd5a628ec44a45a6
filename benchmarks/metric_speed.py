"""Time our video-wise triplet AP against ivtmetrics' on the same random data.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/metric_speed.py``. 100,000 frames x 100 triplet
classes over 40 videos, fixed seed. ivtmetrics is timed as a user runs it: ``update`` and
``video_end`` per video, then ``compute_video_AP``. The brief's figure is component ivt, where
ivtmetrics does no component extraction; a second line times component i, where ivtmetrics
extracts components with a per-frame Python loop. If ivtmetrics would take more than about 60 s, it
runs on the first videos only and its time is scaled to all of them (the output says so).
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


def time_ours(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray, component: str) -> tuple[float, float]:
    """Seconds for our video-wise AP of ``component``, and its mAP."""
    maps = triplet_maps()
    start = time.perf_counter()
    result = triplet_video_ap(labels, scores, video_ids, maps, component=component)
    return time.perf_counter() - start, result["mAP"]


def time_ivtmetrics(
    labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray, videos: np.ndarray, component: str
) -> tuple[float, float]:
    """Seconds for ivtmetrics on ``videos``, and its mAP; numpy's error state is restored after it."""
    from ivtmetrics.recognition import Recognition

    saved = np.geterr()
    try:
        start = time.perf_counter()
        metric = Recognition(num_class=N_CLASSES)
        for v in videos:
            metric.update(labels[video_ids == v], scores[video_ids == v])
            metric.video_end()
        result = metric.compute_video_AP(component)
        return time.perf_counter() - start, float(result["mAP"])
    finally:
        np.seterr(**saved)


def compare(labels: np.ndarray, scores: np.ndarray, video_ids: np.ndarray, component: str) -> None:
    """Print both times, the ratio and, when ivtmetrics ran on every video, both mAPs."""
    videos = np.unique(video_ids)
    ours, our_map = time_ours(labels, scores, video_ids, component)
    probe, _ = time_ivtmetrics(labels, scores, video_ids, videos[:2], component)
    per_video = probe / 2
    n_timed = len(videos) if per_video * len(videos) <= BUDGET_S else max(2, int(BUDGET_S / per_video))
    theirs, their_map = time_ivtmetrics(labels, scores, video_ids, videos[:n_timed], component)
    scaled = theirs * len(videos) / n_timed
    note = "" if n_timed == len(videos) else f" (timed on {n_timed} of {len(videos)} videos, scaled)"
    agreement = f"; mAP ours {our_map:.10f}, ivtmetrics {their_map:.10f}" if n_timed == len(videos) else ""
    print(f"[{component}] ours {ours:.2f} s, ivtmetrics {scaled:.1f} s{note}, ratio {scaled / ours:.0f}x{agreement}")


def main() -> None:
    labels, scores, video_ids = make_data()
    for component in ("ivt", "i"):
        compare(labels, scores, video_ids, component)


if __name__ == "__main__":
    main()
