"""What a dataset plugin hands to the harness: a frame index, its splits and its metrics.

A :class:`Dataset` describes one dataset on disk. Its :class:`FrameIndex` lists, per video, the sampled
frames, their labels and where their pixels come from (image files, or a video file decoded at a
sampling rate). The harness never reads dataset formats itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import numpy as np

from harness.errors import DataError, SdbenchError

Task = Literal["multilabel", "multiclass"]


@dataclass(frozen=True)
class ImageFrames:
    """Pixels come from one image file per frame (CholecT45 PNGs, ESAD JPEGs)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class VideoFileFrames:
    """Pixels come from a video file sampled at ``sample_fps`` by timestamp: frame k is at time k / sample_fps."""

    path: str
    sample_fps: float


FrameSource = ImageFrames | VideoFileFrames


@dataclass(frozen=True)
class VideoFrames:
    """The sampled frames of one video.

    ``frame_ids`` are the frame numbers at the sampling rate (``000123.png`` is 123). ``labels`` is
    ``(N, C)`` uint8 for multi-label tasks and ``(N,)`` int64 class indices for multi-class tasks.
    Row i of ``labels`` is the label of the i-th frame of ``source``.
    """

    video: str
    frame_ids: np.ndarray
    labels: np.ndarray
    source: FrameSource

    def __len__(self) -> int:
        return len(self.frame_ids)


@dataclass(frozen=True)
class FrameIndex:
    """Every labelled frame of a dataset, per video, in a stable order."""

    dataset: str
    task: Task
    class_names: tuple[str, ...]
    videos: Mapping[str, VideoFrames]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def labels(self, videos: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated labels of ``videos`` and, per row, the position of its video in ``videos``."""
        labels = np.concatenate([self.videos[v].labels for v in videos])
        video_ids = np.concatenate([np.full(len(self.videos[v]), i, dtype=np.int64) for i, v in enumerate(videos)])
        return labels, video_ids


@dataclass(frozen=True)
class Split:
    """One train/val/test partition by video. Validation videos come from the training side, never the test set."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = set(getattr(self, a)) & set(getattr(self, b))
            if shared:
                raise ValueError(f"split '{self.name}': videos {sorted(shared)} are in both {a} and {b}")
        for part in ("train", "val", "test"):
            if not getattr(self, part):
                raise ValueError(f"split '{self.name}' has no {part} videos")


MetricFn = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]
"""``metric(labels, probs, video_ids) -> {metric name: value}``; values in [0, 1], higher is better."""


class Dataset(ABC):
    """One dataset as the harness sees it. Plugins subclass this; see ``plugins/datasets``."""

    name: str
    task: Task
    primary_metric: str

    root_env: str | None = None
    """The environment variable that names this dataset's data root, if it has one."""

    def availability(self) -> str | None:
        """None when the data is present, else why not and how to point sdbench at it."""
        return None

    def check(self) -> list[str]:
        """Every problem in the data on disk, each naming the file (and line or video), what was expected and
        what was found. The default reports what :meth:`index` raises; plugins override it to report all."""
        try:
            self.index()
        except DataError as exc:
            return [str(exc)]
        return []

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """Write a small look-alike of this dataset, in its official layout, into ``directory``."""
        raise SdbenchError(f"dataset {getattr(cls, 'name', cls.__name__)} cannot synthesize a look-alike")

    def prepare(self) -> None:
        """Make the data present where that is possible (the demo datasets generate themselves)."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the frames or labels change (cache key of the frame store)."""

    @abstractmethod
    def index(self) -> FrameIndex:
        """Read the labels and list the frames."""

    @abstractmethod
    def splits(self) -> list[Split]:
        """The splits (or cross-validation folds) to run, per the dataset's protocol and options."""

    @abstractmethod
    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Score predicted probabilities against labels with the dataset's official metrics.

        The returned mapping contains ``primary_metric``.
        """
