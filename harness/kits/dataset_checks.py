"""The checks of the dataset kit: plain functions, usable outside pytest, each raising a
:class:`~harness.kits.synthetic.ConformanceError` that names the dataset, the check and what was wrong."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness.data.dataset import Dataset, FrameIndex, ImageFrames, Split, VideoFileFrames, VideoFrames
from harness.errors import DataError
from harness.kits.synthetic import ConformanceError

PARTS = ("train", "val", "test")
FRAME_SIZE = 8
"""The frame size (pixels, square) at which the kit builds frames: small, so any look-alike builds fast."""


def check_splits(name: str, splits: Any, index: FrameIndex) -> None:
    """``splits`` is a non-empty list of Splits with distinct names, each with non-empty, disjoint train, val
    and test parts that name only videos of ``index``."""
    where = f"dataset '{name}'"
    if not isinstance(splits, list) or not splits or not all(isinstance(s, Split) for s in splits):
        raise ConformanceError(f"{where}: splits() returned {splits!r}, expected a non-empty list of "
                               "harness.data.dataset.Split")
    names = [split.name for split in splits]
    if len(set(names)) < len(names):
        raise ConformanceError(f"{where}: splits() returned the split names {names}; each name must be distinct "
                               "(it is part of every job key)")
    for split in splits:
        for part in PARTS:
            members = getattr(split, part)
            if not members:
                raise ConformanceError(f"{where}, split '{split.name}': no {part} videos")
            unknown = [v for v in members if v not in index.videos]
            if unknown:
                raise ConformanceError(f"{where}, split '{split.name}': {part} names videos {unknown[:5]} that "
                                       f"index() does not list (indexed: {_first(index.videos)})")
        for i, a in enumerate(PARTS):
            for b in PARTS[i + 1:]:
                shared = sorted(set(getattr(split, a)) & set(getattr(split, b)))
                if shared:
                    raise ConformanceError(f"{where}, split '{split.name}': videos {shared[:5]} are in both {a} "
                                           f"and {b}; validation comes from the training side, never the test set")


def check_index(name: str, dataset: Dataset, index: Any) -> None:
    """``index`` is the dataset's FrameIndex: its task, non-empty class names, and per video as many frame ids,
    label rows and frames of its source, the labels of the task's shape, dtype and class count."""
    where = f"dataset '{name}'"
    if not isinstance(index, FrameIndex):
        raise ConformanceError(f"{where}: index() returned {index!r}, expected a harness.data.dataset.FrameIndex")
    if index.dataset != dataset.name or index.task != dataset.task or dataset.task not in ("multilabel", "multiclass"):
        raise ConformanceError(f"{where}: index() is of dataset {index.dataset!r}, task {index.task!r}; expected "
                               f"the dataset's name {dataset.name!r} and task {dataset.task!r} (multilabel or "
                               "multiclass)")
    if not index.class_names or not all(isinstance(c, str) and c for c in index.class_names):
        raise ConformanceError(f"{where}: class_names {index.class_names!r}, expected a non-empty tuple of names")
    if not index.videos:
        raise ConformanceError(f"{where}: index() lists no video")
    for key, video in index.videos.items():
        if not isinstance(video, VideoFrames) or video.video != key:
            found = f"the VideoFrames of video {video.video!r}" if isinstance(video, VideoFrames) else repr(video)
            raise ConformanceError(f"{where}: index().videos[{key!r}] is {found}, expected the VideoFrames of "
                                   f"video {key!r}")
        check_video_frames(name, index.task, index.num_classes, video)


def check_video_frames(name: str, task: str, num_classes: int, video: VideoFrames) -> None:
    """One video's frame ids, labels and frame source agree in length, and its labels fit the task."""
    where = f"dataset '{name}', video '{video.video}'"
    frame_ids, labels = np.asarray(video.frame_ids), np.asarray(video.labels)
    if frame_ids.ndim != 1 or not np.issubdtype(frame_ids.dtype, np.integer) or not len(frame_ids):
        raise ConformanceError(f"{where}: frame_ids of shape {frame_ids.shape} and dtype {frame_ids.dtype}, "
                               "expected a non-empty 1-D integer array")
    if len(labels) != len(frame_ids):
        raise ConformanceError(f"{where}: {len(frame_ids)} frame ids but {len(labels)} label rows; row i labels "
                               "frame i")
    if task == "multilabel":
        if labels.shape != (len(frame_ids), num_classes) or labels.dtype != np.uint8 or (labels > 1).any():
            raise ConformanceError(f"{where}: multi-label labels of shape {labels.shape}, dtype {labels.dtype}, "
                                   f"values {np.unique(labels)[:5].tolist()}; expected ({len(frame_ids)}, "
                                   f"{num_classes}) uint8 of 0 and 1")
    elif (labels.shape != (len(frame_ids),) or labels.dtype != np.int64
          or (len(labels) and (labels.min() < 0 or labels.max() >= num_classes))):
        raise ConformanceError(f"{where}: multi-class labels of shape {labels.shape}, dtype {labels.dtype}, "
                               f"values in [{labels.min()}, {labels.max()}]; expected ({len(frame_ids)},) int64 "
                               f"class indices in [0, {num_classes})")
    source = video.source
    if isinstance(source, ImageFrames):
        if len(source.paths) != len(frame_ids):
            raise ConformanceError(f"{where}: {len(frame_ids)} labelled frames but {len(source.paths)} image "
                                   "paths; expected one image per frame")
    elif not isinstance(source, VideoFileFrames) or not (math.isfinite(source.sample_fps) and source.sample_fps > 0):
        raise ConformanceError(f"{where}: frame source {source!r}, expected ImageFrames or VideoFileFrames with a "
                               "positive sample_fps")


def _perfect_and_random_probs(labels: np.ndarray, task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that match ``labels`` exactly, and uniformly random ones (multi-class rows sum to 1)."""
    rng = np.random.default_rng(0)
    if task == "multilabel":
        return labels.astype(np.float32), rng.random(labels.shape, dtype=np.float32)
    random = rng.random((len(labels), num_classes))
    random /= random.sum(axis=1, keepdims=True)
    return np.eye(num_classes, dtype=np.float32)[labels], random.astype(np.float32)


def check_scores(name: str, dataset: Dataset, index: FrameIndex, videos: Sequence[str]) -> None:
    """``evaluate`` on the frames of ``videos`` returns its primary metric and every metric as a fraction in
    [0, 1], perfect predictions scoring at least as high as random ones on the primary metric."""
    labels, video_ids = index.labels(videos)
    perfect, random = (_scores(name, dataset, labels, probs, video_ids)
                       for probs in _perfect_and_random_probs(labels, index.task, index.num_classes))
    metric = dataset.primary_metric
    if perfect[metric] < random[metric]:
        raise ConformanceError(f"dataset '{name}': evaluate() scores perfect predictions {metric} = "
                               f"{perfect[metric]:.4g}, below random ones ({random[metric]:.4g}); higher must be "
                               "better")


def _scores(name: str, dataset: Dataset, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict:
    scores = dataset.evaluate(labels, probs, video_ids)
    where = f"dataset '{name}': evaluate()"
    if not isinstance(scores, Mapping) or dataset.primary_metric not in scores:
        raise ConformanceError(f"{where} returned {scores!r}, expected a mapping with the primary metric "
                               f"{dataset.primary_metric!r}")
    bad = {k: v for k, v in scores.items() if isinstance(v, bool) or not isinstance(v, (int, float, np.number))
           or not 0 <= v <= 1}
    if bad:
        raise ConformanceError(f"{where} returned {bad}; every metric must be a number in [0, 1] (a fraction, "
                               "not a percentage, never NaN)")
    return dict(scores)


def check_fingerprint_survives_a_copy(name: str, make_dataset: Callable[[Path], Dataset], root: Path,
                                      copy: Path) -> str:
    """The fingerprint of ``root`` is a non-empty string, the same for a copy at ``copy`` (new modification
    times); returns it."""
    original = make_dataset(root).fingerprint()
    if not isinstance(original, str) or not original:
        raise ConformanceError(f"dataset '{name}': fingerprint() returned {original!r}, expected a non-empty string")
    shutil.copytree(root, copy, copy_function=shutil.copy)
    copied = make_dataset(copy).fingerprint()
    if copied != original:
        raise ConformanceError(f"dataset '{name}': fingerprint() of a copy of the data in another directory is "
                               f"{copied}, not {original}: it must depend on content, never on the root or "
                               "modification times (see harness.data.fingerprint)")
    return original


def check_fingerprint_follows_the_label_file(name: str, make_dataset: Callable[[Path], Dataset], root: Path,
                                             label_file: str) -> None:
    """Changing the bytes of ``label_file`` (relative to ``root``; a newline is appended) changes the fingerprint."""
    path = root / label_file
    if not path.is_file():
        raise ConformanceError(f"dataset '{name}': the declared label_file {label_file!r} is not a file of the "
                               f"look-alike in {root}")
    before = make_dataset(root).fingerprint()
    with open(path, "ab") as handle:
        handle.write(b"\n")
    if make_dataset(root).fingerprint() == before:
        raise ConformanceError(f"dataset '{name}': fingerprint() stayed {before} when the bytes of {label_file} "
                               "changed; it must hash every label file, or stale frames and jobs are reused")


def check_no_problems(name: str, dataset: Dataset) -> None:
    """The dataset is available and ``check()`` returns an empty list."""
    reason = dataset.availability()
    if reason is not None:
        raise ConformanceError(f"dataset '{name}': availability() says {reason!r} for its own look-alike")
    problems = dataset.check()
    if problems != []:
        shown = "; ".join(map(str, problems[:5])) if isinstance(problems, list) else repr(problems)
        raise ConformanceError(f"dataset '{name}': check() on its own look-alike returned {shown}; expected [] "
                               "(a list of problems, empty when there is none)")


def check_frames(name: str, dataset: Dataset, videos: Sequence[VideoFrames], store: Path) -> None:
    """The frame store builds ``videos`` at :data:`FRAME_SIZE`: uint8 ``(frames, size, size, 3)`` each."""
    from harness.data.frames import FrameStore

    try:
        arrays = FrameStore(store).load(dataset.name, dataset.fingerprint(), videos, FRAME_SIZE)
    except DataError as exc:
        raise ConformanceError(f"dataset '{name}': the frame store cannot build frames from the index: {exc}") from exc
    for video, frames in zip(videos, arrays):
        if frames.shape != (len(video), FRAME_SIZE, FRAME_SIZE, 3) or frames.dtype != np.uint8:
            raise ConformanceError(f"dataset '{name}', video '{video.video}': frames of shape {frames.shape}, "
                                   f"expected ({len(video)}, {FRAME_SIZE}, {FRAME_SIZE}, 3)")


def _first(names: Any, count: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


