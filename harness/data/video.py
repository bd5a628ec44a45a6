"""Decode a video file into frames sampled by timestamp.

The file is decoded straight through (seeking to every sampled frame is 4-7x slower with x264's keyframe
spacing) with FFmpeg's own threading, and only the kept frames are converted to RGB at the target size.
Sampling is by timestamp, so constant frame rates that are not a multiple of the sampling rate (29.97 fps)
and variable frame rates are sampled correctly.
"""

from __future__ import annotations

import itertools
import math
from contextlib import closing
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from harness.errors import DataError

_TOLERANCE_S = 1e-6
"""Timestamps are rationals turned into floats: 1.0 may come out as 0.99999999."""


def sampled_frames(path: str | Path, sample_fps: float, size: int, threads: int = 0) -> Iterator[np.ndarray]:
    """Frames at times 0, 1/sample_fps, 2/sample_fps, ... as uint8 ``(size, size, 3)`` RGB, one at a time.

    Frame k is the first decoded frame whose timestamp, counted from the first frame, is at least
    ``k / sample_fps``; across a gap in a variable-rate stream one frame stands for several (the same array
    is yielded again). Nothing is decoded beyond the frame last asked for; the file stays open until the
    iterator is exhausted or closed. Any decoding error raises :class:`DataError` naming the file and the
    time reached. ``threads`` is the decoder's thread count (0: FFmpeg picks one per core).
    """
    kept = 0
    reached = 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            start = None
            for frame in container.decode(stream):
                if frame.time is None:
                    raise DataError(f"{path}: frame without a timestamp after {reached:.2f} s")
                start = frame.time if start is None else start
                reached = frame.time - start
                due = math.floor((reached + _TOLERANCE_S) * sample_fps) + 1 - kept
                if due > 0:
                    pixels = frame.reformat(width=size, height=size, format="rgb24").to_ndarray()
                    for _ in range(due):
                        yield pixels
                    kept += due
    except av.FFmpegError as exc:
        raise DataError(f"{path}: cannot decode video after {reached:.2f} s: {exc}") from exc


def decode_sampled(path: str | Path, sample_fps: float, size: int, expected_frames: int | None = None,
                   threads: int = 0) -> np.ndarray:
    """The frames of :func:`sampled_frames` as one uint8 ``(N, size, size, 3)`` array; decoding stops once
    ``expected_frames`` frames are kept."""
    with closing(sampled_frames(path, sample_fps, size, threads)) as frames:
        kept = list(itertools.islice(frames, expected_frames))
    return np.stack(kept) if kept else np.zeros((0, size, size, 3), dtype=np.uint8)
