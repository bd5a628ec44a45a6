"""What the benchmarks share: frames laid out as the frame store keeps them (one uint8 ``.npy`` file per
video, opened memory-mapped, as in :mod:`harness.data.frames`), and the line of per-run figures they print."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def memmapped_videos(frames: np.ndarray, videos: int, folder: Path) -> list[np.ndarray]:
    """``frames`` split into ``videos`` consecutive videos, each saved in ``folder`` and opened read-only
    and memory-mapped, in order."""
    arrays = []
    for v, chunk in enumerate(np.array_split(frames, videos)):
        path = Path(folder) / f"video{v}.npy"
        np.save(path, chunk)
        arrays.append(np.load(path, mmap_mode="r"))
    return arrays


def per_run(values: Sequence[float], digits: int = 2) -> str:
    """``values`` as a comma-separated list, one figure per timed run."""
    return ", ".join(f"{value:.{digits}f}" for value in values)
