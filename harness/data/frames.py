"""The frame store: every sampled frame decoded once, resized, and kept as a memory-mapped uint8 array.

One ``.npy`` file per video under ``<root>/frames/<dataset>/<fingerprint>/<size>/<video>.npy``. A file is
written to a temporary name in its own directory and renamed into place, so a half-written file is never
read and an interrupted build resumes with the next missing video.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.atomic import write_npy
from harness.data.dataset import ImageFrames, VideoFileFrames, VideoFrames
from harness.errors import DataError


class FrameStore:
    """Decoded frames of every dataset, keyed by dataset fingerprint and frame size."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, dataset_name: str, fingerprint: str, video: str, size: int) -> Path:
        return self.root / "frames" / dataset_name / fingerprint / str(size) / f"{video}.npy"

    def frames(self, dataset_name: str, fingerprint: str, video: VideoFrames, size: int) -> np.ndarray:
        """Read-only uint8 ``(N, size, size, 3)`` frames of ``video``, decoded on first use."""
        path = self.path(dataset_name, fingerprint, video.video, size)
        if not path.exists():
            write_npy(path, _decode(video, size))
        return np.load(path, mmap_mode="r")

    def build(self, dataset_name: str, fingerprint: str, videos: Sequence[VideoFrames], size: int,
              progress: Callable[[str], None] | None = None) -> None:
        """Decode every video not yet in the store; ``progress`` receives one line per video."""
        for number, video in enumerate(videos, 1):
            frames = self.frames(dataset_name, fingerprint, video, size)
            if progress is not None:
                progress(f"{dataset_name} {video.video}: {len(frames)} frames ({number}/{len(videos)})")


def _decode(video: VideoFrames, size: int) -> np.ndarray:
    """The frames of ``video`` at ``size``, exactly one per labelled frame."""
    source = video.source
    if isinstance(source, ImageFrames):
        frames = _read_images(source.paths[:len(video)], size)
    elif isinstance(source, VideoFileFrames):
        from harness.data.video import decode_sampled

        frames = decode_sampled(source.path, source.sample_fps, size, expected_frames=len(video))
    else:
        raise TypeError(f"unknown frame source {source!r}")
    if len(frames) < len(video):
        raise DataError(f"video {video.video}: {len(video)} frames are labelled but only {len(frames)} "
                        f"could be read from {_describe(source)}")
    return frames[:len(video)]


def _read_images(paths: Sequence[str], size: int) -> np.ndarray:
    """Images resized to ``size`` x ``size`` (bilinear, squashed: no crop)."""
    from PIL import Image

    frames = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                frames[i] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        except FileNotFoundError:
            raise DataError(f"frame image {path} is missing") from None
        except OSError as exc:
            raise DataError(f"frame image {path} cannot be read: {exc}") from exc
    return frames


def _describe(source: ImageFrames | VideoFileFrames) -> str:
    return source.path if isinstance(source, VideoFileFrames) else f"{len(source.paths)} image files"

