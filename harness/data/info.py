"""A dataset at a glance: videos, frames, class frequencies and split sizes (``bench data info``)."""

from __future__ import annotations

import numpy as np

from harness.data.dataset import Dataset


def class_frequencies(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Frames in which each class is present (multi-label ``(N, C)``) or annotated (multi-class ``(N,)``)."""
    if labels.ndim == 2:
        return labels.astype(np.int64).sum(axis=0)
    return np.bincount(labels.astype(np.int64), minlength=num_classes)


def describe(dataset: Dataset) -> str:
    from tabulate import tabulate

    index = dataset.index()
    videos = list(index.videos)
    labels, _ = index.labels(videos)
    lines = [f"{dataset.name}: {index.task}, {len(videos)} videos, {len(labels)} frames, "
             f"{index.num_classes} classes, primary metric {dataset.primary_metric}", ""]
    counts = class_frequencies(labels, index.num_classes)
    present = [(i, name, int(c)) for i, (name, c) in enumerate(zip(index.class_names, counts)) if c > 0]
    lines.append(tabulate([(i, name, c, f"{100 * c / len(labels):.1f}%") for i, name, c in present],
                          headers=["class", "name", "frames", "share"], tablefmt="github"))
    lines.append(f"\n{index.num_classes - len(present)} classes have no frame.\n")
    rows = []
    for split in dataset.splits():
        for part in ("train", "val", "test"):
            members = getattr(split, part)
            frames = sum(len(index.videos[v]) for v in members if v in index.videos)
            rows.append((split.name, part, len(members), frames, " ".join(members)))
    lines.append(tabulate(rows, headers=["split", "part", "videos", "frames", "members"], tablefmt="github"))
    return "\n".join(lines)
