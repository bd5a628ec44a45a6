"""The frame store: every sampled frame decoded once, resized, and kept as a memory-mapped uint8 array.

One ``.npy`` file per video under ``<root>/frames/<dataset>/<fingerprint>/<size>/<video>.npy``. A file is
written to a temporary name in its own directory and renamed into place, so a half-written file is never
read and an interrupted build resumes with the next missing video. Videos are decoded in parallel
(:meth:`FrameStore.load`); one that cannot be decoded is reported once all the others are built.

Why raw uint8 and not JPEG (``benchmarks/store_format.py``: 500 and 2,000 synthetic 224 x 224 frames, random
batches of 64, CPU, page cache warm, 2 cores shared with other work): a batch gathered from the memory maps
took 0.6-0.7 ms (1,393-1,558 batches/s); the same frames as quality-90 JPEG files decoded per batch
took 19-25 ms with PIL or ``torchvision.io.decode_jpeg`` (40-54 batches/s, 26-39x slower; a second decoding
thread did not help). A whole augmented batch costs 16-20 ms on the same CPU, so JPEG would more than
double the input pipeline's time while the memory maps cost next to nothing. The price is disk: 147 KB per frame against 10.5 KB
(14x), about 28 GB for Cholec80 at 1 fps and 224 px. GPU decoding (nvJPEG) was not measured (no GPU here).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from harness.atomic import write_npy
from harness.data.dataset import ImageFrames, VideoFileFrames, VideoFrames
from harness.errors import DataError


class FrameBuildError(DataError):
    """Some videos of a store build could not be decoded; every other video was built and kept."""

    def __init__(self, dataset_name: str, failures: Mapping[str, str], total: int) -> None:
        self.failures = dict(failures)
        lines = [f"{dataset_name}: {len(failures)} of {total} videos could not be decoded "
                 f"({total - len(failures)} in the frame store):"]
        lines += [f"  {video}: {message}" for video, message in self.failures.items()]
        super().__init__("\n".join(lines))


class FrameStore:
    """Decoded frames of every dataset, keyed by dataset fingerprint and frame size."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, dataset_name: str, fingerprint: str, video: str, size: int) -> Path:
        return self.root / "frames" / dataset_name / fingerprint / str(size) / f"{video}.npy"

    def frames(self, dataset_name: str, fingerprint: str, video: VideoFrames, size: int) -> np.ndarray:
        """Read-only uint8 ``(N, size, size, 3)`` frames of one ``video``, decoded on first use."""
        return self.load(dataset_name, fingerprint, [video], size)[0]

    def load(self, dataset_name: str, fingerprint: str, videos: Sequence[VideoFrames], size: int,
             progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """The read-only frames of every video of ``videos``, in that order, decoding the missing ones in parallel.

        ``progress(n)`` is called as ``n`` more videos are ready. A video that cannot be decoded does not stop
        the others: they are all built and kept, then :class:`FrameBuildError` lists every failure. Any other
        exception (an interruption, a full disk) cancels the videos not started, waits for those being
        decoded, and propagates; every stored file is complete, so a rerun builds only what is missing.
        """
        missing = [v for v in videos if not self.path(dataset_name, fingerprint, v.video, size).exists()]
        if progress is not None and len(missing) < len(videos):
            progress(len(videos) - len(missing))
        failures = self._build(dataset_name, fingerprint, missing, size, progress)
        if failures:
            raise FrameBuildError(dataset_name, failures, total=len(videos))
        return [np.load(self.path(dataset_name, fingerprint, v.video, size), mmap_mode="r") for v in videos]

    def _build(self, dataset_name: str, fingerprint: str, videos: Sequence[VideoFrames], size: int,
               progress: Callable[[int], None] | None) -> dict[str, str]:
        """Decode and store ``videos`` on a thread pool; the failures, video -> message.

        PyAV and PIL release the GIL while decoding and resizing, so threads decode in parallel (two videos
        on two threads took 0.57x the time of one after the other here). Running one video per core with a
        single-threaded decoder beats fewer videos with multi-threaded decoders, whose frame threads wait on
        each other; a build of fewer videos than cores gives each decoder its share of the cores.
        """
        if not videos:
            return {}
        cores = os.cpu_count() or 1
        workers = min(len(videos), cores)
        threads = max(1, cores // workers)

        def build(video: VideoFrames) -> None:
            write_npy(self.path(dataset_name, fingerprint, video.video, size), _decode(video, size, threads))

        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="frames") as pool:
            futures = {pool.submit(build, video): video.video for video in videos}
            try:
                for future in as_completed(futures):
                    try:
                        future.result()
                    except DataError as exc:
                        failures[futures[future]] = str(exc)
                    if progress is not None:
                        progress(1)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return {video.video: failures[video.video] for video in videos if video.video in failures}


def _decode(video: VideoFrames, size: int, threads: int) -> np.ndarray:
    """The frames of ``video`` at ``size``, exactly one per labelled frame."""
    source = video.source
    if isinstance(source, ImageFrames):
        frames = _read_images(source.paths[:len(video)], size)
    elif isinstance(source, VideoFileFrames):
        from harness.data.video import decode_sampled

        frames = decode_sampled(source.path, source.sample_fps, size, expected_frames=len(video), threads=threads)
    else:
        raise TypeError(f"unknown frame source {source!r}")
    if len(frames) < len(video):
        raise DataError(f"video {video.video}: {len(video)} frames are labelled but only {len(frames)} "
                        f"could be read from {_describe(source, len(frames))}")
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


def _describe(source: ImageFrames | VideoFileFrames, frames_read: int) -> str:
    if isinstance(source, VideoFileFrames):
        return f"{source.path} (its frames end before {frames_read / source.sample_fps:.2f} s)"
    return f"{len(source.paths)} image files"

