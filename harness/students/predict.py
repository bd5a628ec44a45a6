"""``bench predict``: a student's class probabilities for every sampled frame of a video, or for every image
of a folder, as CSV.

Frames take the paths of training: a video is decoded by :func:`harness.data.video.sampled_frames` and
images are read by the frame store's reader, both resized to the model's ``image_size`` as the frame store
resizes them; then :func:`harness.train.fit.predict` normalises them (:class:`~harness.data.augment.ModelInputs`)
and scores them, one batch at a time, so that memory stays bounded whatever the video's length.

The CSV has one row per frame: ``frame`` (its index at the sampling rate, or in name order), ``time_s`` (its
time in the video) or ``file`` (the image's name), then one column per class with its probability (sigmoid
or softmax, as the model's task says).
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Iterator

import numpy as np

from harness.errors import ConfigError, DataError
from harness.hooks.registry import Registry
from harness.system.atomic import write_with
from harness.system.progress import Progress
from harness.train.model_files import ModelCard, load_model
from harness.train.models import Backbone

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Frames:
    """Frames to score, one ``(key, pixels)`` at a time; ``column`` names the key, ``expected`` is how many
    frames there should be (0: unknown), for the progress bar."""

    column: str
    items: Iterator[tuple[float | str, np.ndarray]]
    expected: int


def frames_of(path: Path, fps: float, size: int) -> Frames:
    """The frames of a video file sampled at ``fps``, or of the image files of a folder in name order (hidden
    files and files of other suffixes are left out), resized to ``size`` x ``size``."""
    from harness.data.frames import read_images
    from harness.data.video import sampled_frames

    path = Path(path)
    if path.is_dir():
        images = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                         and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
        if not images:
            raise DataError(f"{path} holds no image files: expected frames with one of the suffixes "
                            f"{', '.join(IMAGE_SUFFIXES)}, named so that they sort in order")
        return Frames("file", zip((p.name for p in images), read_images([str(p) for p in images], size)),
                      len(images))
    if path.is_file():
        if not fps > 0:
            raise ConfigError(f"--fps must be positive, got {fps}")
        timed = ((round(k / fps, 6), pixels) for k, pixels in enumerate(sampled_frames(path, fps, size)))
        return Frames("time_s", timed, _expected_frames(path, fps))
    raise DataError(f"{path} not found: expected a video file or a folder of frame images")


def _expected_frames(path: Path, fps: float) -> int:
    """How many frames :func:`sampled_frames` should yield, from the container's duration (0: unknown). An
    unreadable file is left for the decoder to report."""
    import av

    try:
        with av.open(str(path)) as container:
            duration = container.duration
    except av.FFmpegError:
        return 0
    return 0 if duration is None else math.floor(duration / av.time_base * fps) + 1


def probability_rows(card: ModelCard, backbone: Backbone, frames: Frames, device: "torch.device", batch_size: int,
                     precision: str, advance: Callable[[int], None]) -> Iterator[list[object]]:
    """``[frame, key, probability per class...]`` for every frame, scored ``batch_size`` frames at a time by
    ``backbone.model``, which must be on ``device``."""
    from harness.data.loader import FrameSet
    from harness.train.fit import predict

    index = 0
    while batch := list(itertools.islice(frames.items, batch_size)):
        keys, pixels = zip(*batch)
        probs = predict(backbone.model, backbone, FrameSet([np.stack(pixels)]), card.task, device, batch_size,
                        precision=precision)
        for key, row in zip(keys, probs):
            yield [index, key, *(format(float(p), ".9g") for p in row)]  # 9 digits: float32 exactly
            index += 1
        advance(len(batch))


def write_predictions(model_dir: Path, source: Path, registry: Registry, out: Path | None = None,
                      fps: float = 1.0, device: str = "auto", batch_size: int = 128, precision: str = "auto",
                      progress: Progress | None = None) -> int:
    """Write the CSV of the model in ``model_dir`` on ``source`` (a video file or a folder of images) to
    ``out`` (atomically) or to standard output; the number of frames. A source without any frame is a
    :class:`DataError`, raised before anything is written."""
    from harness.train.fit import pick_device

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    card, backbone = load_model(model_dir, registry)
    torch_device = pick_device(device)
    backbone.model.to(torch_device)
    frames = frames_of(source, fps, card.image_size)
    first = next(frames.items, None)  # an unreadable source fails here, before anything is written
    if first is None:
        raise DataError(f"{source}: no frame could be decoded")
    frames = replace(frames, items=itertools.chain([first], frames.items))
    progress = progress or Progress()
    count = 0

    def write(handle: IO) -> None:
        nonlocal count
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["frame", frames.column, *card.class_names])
        with progress.task(f"predict {Path(source).name}", frames.expected) as advance:
            for row in probability_rows(card, backbone, frames, torch_device, batch_size, precision, advance):
                writer.writerow(row)
                count += 1

    if out is None:
        write(sys.stdout)
    else:
        write_with(Path(out), write, "w")
    return count
