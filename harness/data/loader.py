"""Batches of frames from the frame store, delivered to the training device.

Frames stay in their per-video memory-mapped arrays. A background thread gathers the next batch's rows from
them straight into (on CUDA, pinned) memory while the current batch trains, and batches are copied to the
device without blocking. Normalisation and augmentation then run batched on the device
(:mod:`harness.data.augment`).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, Sequence

import numpy as np
import torch

Batch = tuple[torch.Tensor, torch.Tensor | None]


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

    def gather(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (len(rows), H, W, 3) frames of ``rows``, in the order given, written into ``out`` if given.

        One copy per frame, straight from its memory map into place.
        """
        if out is None:
            out = np.empty((len(rows), *self.frame_shape), dtype=np.uint8)
        videos = np.searchsorted(self.starts, rows, side="right") - 1
        for i, (video, row) in enumerate(zip(videos.tolist(), (rows - self.starts[videos]).tolist())):
            out[i] = self.arrays[video][row]
        return out


def iterate_batches(frames: FrameSet, targets: np.ndarray | None, batch_size: int, device: torch.device,
                    order: np.ndarray | None = None, prefetch: int = 1) -> Iterator[Batch]:
    """Yield ``(uint8 frames (B, H, W, 3), targets)`` on ``device`` in ``order`` (default: row order).

    A final batch of a single frame is dropped when training (``order`` given): batch norm cannot use it.
    A background thread prepares the batches ahead, keeping up to ``prefetch`` of them ready (0: no thread);
    the batches and their order are the same either way.
    """
    rows = np.arange(len(frames)) if order is None else order
    chunks = [rows[start:start + batch_size] for start in range(0, len(rows), batch_size)]
    if order is not None and chunks and len(chunks[-1]) < 2:
        chunks.pop()
    pin = device.type == "cuda"

    def host_batch(chunk: np.ndarray) -> Batch:
        x = torch.empty((len(chunk), *frames.frame_shape), dtype=torch.uint8, pin_memory=pin)
        frames.gather(chunk, out=x.numpy())
        if targets is None:
            return x, None
        y = torch.from_numpy(np.ascontiguousarray(targets[chunk]))
        return x, (y.pin_memory() if pin else y)

    host_batches = _prefetched(map(host_batch, chunks), prefetch) if prefetch > 0 else map(host_batch, chunks)
    for x, y in host_batches:
        yield x.to(device, non_blocking=True), (None if y is None else y.to(device, non_blocking=True))


_DONE = object()


def _prefetched(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """``batches``, produced on a background thread that keeps up to ``depth`` of them ready.

    An exception in the producer is raised in the consumer; a consumer that stops early stops the producer.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Queue ``item`` unless the consumer has stopped; whether it was queued."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)
            return
        offer(_DONE)

    worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()
