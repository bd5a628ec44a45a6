"""Batches of frames from the frame store, delivered to the training device.

Frames stay in their per-video memory-mapped arrays; a batch gathers its rows from them, goes through pinned
memory on CUDA and is copied without blocking. Normalisation and augmentation then run batched on the device
(:mod:`harness.data.augment`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class FrameSet:
    """The frames of several videos, addressed by one row index in video order."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        if not arrays:
            raise ValueError("a FrameSet needs at least one video")
        self.arrays = list(arrays)
        self.starts = np.cumsum([0] + [len(a) for a in self.arrays])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.arrays[0].shape[1:])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (len(rows), H, W, 3) frames of ``rows``, in the order given."""
        out = np.empty((len(rows), *self.frame_shape), dtype=np.uint8)
        video = np.searchsorted(self.starts, rows, side="right") - 1
        for v in np.unique(video):
            mask = video == v
            out[mask] = self.arrays[v][rows[mask] - self.starts[v]]
        return out


def iterate_batches(frames: FrameSet, targets: np.ndarray | None, batch_size: int, device: torch.device,
                    order: np.ndarray | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Yield ``(uint8 frames (B, H, W, 3), targets)`` on ``device`` in ``order`` (default: row order).

    A final batch of a single frame is dropped when training (``order`` given): batch norm cannot use it.
    """
    rows = np.arange(len(frames)) if order is None else order
    pin = device.type == "cuda"
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        if order is not None and len(chunk) < 2:
            break
        x = torch.from_numpy(frames.gather(chunk))
        y = None if targets is None else torch.from_numpy(np.ascontiguousarray(targets[chunk]))
        if pin:
            x = x.pin_memory()
            y = None if y is None else y.pin_memory()
        yield x.to(device, non_blocking=True), (None if y is None else y.to(device, non_blocking=True))
