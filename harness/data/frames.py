"""The frame store: every sampled frame decoded once, resized, and kept as a memory-mapped uint8 array.

One ``.npy`` file per video under ``<root>/frames/<dataset>/<fingerprint>/<pipeline>/<size>/<video>.npy``,
where ``<pipeline>`` (:func:`frame_pipeline_id`) names the decoding and resizing code, so that a change there
rebuilds the frames. A video is decoded straight into a memory-mapped temporary file in its own directory
(memory stays bounded whatever its length) and renamed into place, so a half-written file is never read and
an interrupted build resumes with the next missing video. Each video is built under a lock beside its file,
so two processes never decode the same video. Videos are decoded in parallel (:meth:`FrameStore.load`); one
that cannot be decoded is reported once all the others are built.

Why raw uint8 and not JPEG (``benchmarks/store_format.py``: 500 and 2,000 synthetic 224 x 224 frames, random
batches of 64, CPU, page cache warm, 2 cores shared with other work): a batch gathered from the memory maps
took 0.6-0.7 ms (1,393-1,558 batches/s); the same frames as quality-90 JPEG files decoded per batch
took 19-25 ms with PIL or ``torchvision.io.decode_jpeg`` (40-54 batches/s, 26-39x slower; a second decoding
thread did not help). A whole augmented batch costs 16-20 ms on the same CPU, so JPEG would more than
double the input pipeline's time while the memory maps cost next to nothing. The price is disk: 147 KB per frame against 10.5 KB
(14x), about 28 GB for Cholec80 at 1 fps and 224 px. GPU decoding (nvJPEG) was not measured (no GPU here).
"""

from __future__ import annotations

import errno
import itertools
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import closing
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.lib.format import open_memmap

from harness.data.dataset import FrameSource, ImageFrames, VideoFileFrames, VideoFrames
from harness.errors import DataError, SdbenchError
from harness.system.atomic import DISK_FULL
from harness.system.cpus import available_cpus
from harness.system.faults import kill_point
from harness.system.locks import fsync_directory, held

FRAME_PIPELINE_VERSION = 1
"""Bump whenever the decoding or resizing code changes the stored pixels: it is part of every store path
(:func:`frame_pipeline_id`) and so of every frames job key."""


def frame_pipeline_id() -> str:
    """``pipeline<FRAME_PIPELINE_VERSION>-av<major.minor>-pillow<major.minor>``: what the stored pixels depend
    on besides the dataset and the size (PyAV decodes and resizes video frames, Pillow images)."""
    import av
    import PIL

    return f"pipeline{FRAME_PIPELINE_VERSION}-av{_major_minor(av.__version__)}-pillow{_major_minor(PIL.__version__)}"


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def lock_path(target: Path) -> Path:
    """The lock held while the frames file ``target`` is built: hidden, beside it."""
    return target.with_name(f".{target.name}.lock")


class FrameBuildError(DataError):
    """Some videos of a store build could not be decoded; every other video was built and kept."""

    def __init__(self, dataset_name: str, failures: Mapping[str, str], total: int) -> None:
        self.failures = dict(failures)
        lines = [f"{dataset_name}: {len(failures)} of {total} videos could not be decoded "
                 f"({total - len(failures)} in the frame store):"]
        lines += [f"  {video}: {message}" for video, message in self.failures.items()]
        super().__init__("\n".join(lines))


class FrameStore:
    """Decoded frames of every dataset, keyed by dataset fingerprint, frame pipeline and frame size."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pipeline(self) -> str:
        """The :func:`frame_pipeline_id` of the frames this store builds and reads."""
        return frame_pipeline_id()

    def path(self, dataset_name: str, fingerprint: str, video: str, size: int) -> Path:
        """The frames file of ``video``; raises :class:`DataError` for a video name that is not a plain file name."""
        _check_video_name(dataset_name, video)
        return self.root / "frames" / dataset_name / fingerprint / self.pipeline / str(size) / f"{video}.npy"

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
        paths = [self.path(dataset_name, fingerprint, v.video, size) for v in videos]
        missing = [(v, path) for v, path in zip(videos, paths) if not path.exists()]
        if progress is not None and len(missing) < len(videos):
            progress(len(videos) - len(missing))
        failures = self._build(dataset_name, missing, size, progress)
        if failures:
            raise FrameBuildError(dataset_name, failures, total=len(videos))
        return [np.load(path, mmap_mode="r") for path in paths]

    def _build(self, dataset_name: str, videos: Sequence[tuple[VideoFrames, Path]], size: int,
               progress: Callable[[int], None] | None) -> dict[str, str]:
        """Decode and store ``videos`` (each with its target) on a thread pool; the failures, video -> message.

        PyAV and PIL release the GIL while decoding and resizing, so threads decode in parallel (two videos
        on two threads took 0.57x the time of one after the other here). Running one video per CPU with a
        single-threaded decoder beats fewer videos with multi-threaded decoders, whose frame threads wait on
        each other; a build of fewer videos than CPUs gives each decoder its share of them. CPUs are those
        this process may use (:func:`~harness.system.cpus.available_cpus`), not the machine's.
        """
        if not videos:
            return {}
        cpus = available_cpus()
        workers = min(len(videos), cpus)
        threads = max(1, cpus // workers)
        failures: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="frames") as pool:
            futures = {pool.submit(_store_video, dataset_name, video, target, size, threads): video.video
                       for video, target in videos}
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
        return {video.video: failures[video.video] for video, _ in videos if video.video in failures}


def _check_video_name(dataset_name: str, video: str) -> None:
    """Refuse a name that would put its file outside its folder, or make it a hidden file like the store's
    temporaries and locks."""
    if (not video or video.startswith(".") or "/" in video or "\\" in video or "\0" in video
            or os.path.isabs(video)):
        raise DataError(f"dataset {dataset_name}: video name {video!r} cannot name a frame-store file: expected "
                        "a plain file name (not empty, not starting with '.', without '/', '\\' or NUL)")


def _store_video(dataset_name: str, video: VideoFrames, target: Path, size: int, threads: int) -> None:
    """Build ``target`` unless another process has meanwhile: the lock makes concurrent builds of one video
    wait for each other, and the one that comes second finds the file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with held(lock_path(target), f"frames of {dataset_name} video {video.video}"):
        if not target.exists():
            _write_frames(target, video, size, threads)


_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def _write_frames(target: Path, video: VideoFrames, size: int, threads: int) -> None:
    """Decode ``video`` into a memory-mapped hidden temporary ``.npy`` beside ``target``, flush and fsync it, and
    rename it into place. The decoded frames live in the mapped file's pages, which the kernel writes back and
    reclaims, so memory stays bounded whatever the video's length. On any error the temporary is removed.

    The file's blocks are reserved before decoding: a write into a mapped page that the disk has no room for
    kills the process (SIGBUS) instead of raising. A full disk or quota raises :class:`SdbenchError`, which
    stops the build (every other video would fail the same way)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "r+b") as handle:
            frames = open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(len(video), size, size, 3))
            _reserve(handle.fileno())
            count = _fill(frames, video.source, size, threads)
            if count < len(video):
                raise DataError(f"video {video.video}: {len(video)} frames are labelled but only {count} "
                                f"could be read from {_describe(video.source, count)}")
            frames.flush()
            del frames
            os.fsync(handle.fileno())
        kill_point("atomic-write")
        os.replace(temporary, target)
        fsync_directory(target.parent)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise SdbenchError(f"cannot write the frames of video {video.video} to {target}: {exc.strerror}; "
                               "the videos stored so far are kept: free some space and run the same command "
                               "again") from exc
        raise


def _reserve(fd: int) -> None:
    """Allocate every block of the file ``fd`` now, where the system and the file system can (not ZFS)."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows
        return
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in _NO_FALLOCATE:
            raise


def _fill(out: np.ndarray, source: FrameSource, size: int, threads: int) -> int:
    """Write the frames of ``source`` into ``out`` in order, decoding no more than it holds; how many there were."""
    count = 0
    with closing(_source_frames(source, size, threads)) as frames:
        for pixels in itertools.islice(frames, len(out)):
            out[count] = pixels
            count += 1
    return count


def _source_frames(source: FrameSource, size: int, threads: int) -> Iterator[np.ndarray]:
    """The frames of ``source`` at ``size``, one at a time."""
    if isinstance(source, ImageFrames):
        return read_images(source.paths, size)
    if isinstance(source, VideoFileFrames):
        from harness.data.video import sampled_frames

        return sampled_frames(source.path, source.sample_fps, size, threads=threads)
    raise TypeError(f"unknown frame source {source!r}")


def read_images(paths: Sequence[str], size: int) -> Iterator[np.ndarray]:
    """Images resized to ``size`` x ``size`` (bilinear, squashed: no crop), one at a time.

    An image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is refused: decoding a decompression bomb
    would take all memory. PIL raises for twice that limit and only warns above it; both are refused here.
    """
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as image:
                pixels = image.width * image.height
                if Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS:
                    raise DataError(f"frame image {path} is refused as a possible decompression bomb: "
                                    f"{pixels} pixels, over PIL.Image.MAX_IMAGE_PIXELS ({Image.MAX_IMAGE_PIXELS})")
                frame = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DataError(f"frame image {path} is refused as a possible decompression bomb: {exc}") from None
        except FileNotFoundError:
            raise DataError(f"frame image {path} is missing") from None
        except OSError as exc:
            raise DataError(f"frame image {path} cannot be read: {exc}") from exc
        yield frame


def _describe(source: FrameSource, frames_read: int) -> str:
    if isinstance(source, VideoFileFrames):
        return f"{source.path} (its frames end before {frames_read / source.sample_fps:.2f} s)"
    return f"{len(source.paths)} image files"
