"""The Cholec80 dataset (surgical phases), its reader and writer, and what phase datasets share.

::

    videos/video01.mp4                   25 fps recordings
    phase_annotations/video01-phase.txt  header "Frame<TAB>Phase", then one line per 25-fps frame
    tool_annotations/video01-tool.txt    optional; not used (the task here is phases)

Phases are written as names and mapped by name to the canonical order of :data:`PHASES` (some loaders use
another order). Frames are sampled from the video by timestamp: frame k at ``sample_fps`` is the 25-fps
frame ``round(k * 25 / sample_fps)`` and takes that frame's annotation.

Annotation and video length can differ by a few frames. Frames are aligned by index; labelled seconds
beyond what the video holds (read from the container's metadata) are dropped, and each drop is logged
with its counts. :meth:`PhaseVideoDataset.check` reports every problem it finds, reading each video's
length from its container metadata (damage inside a stream shows when the frame store decodes it).

Splits (option ``split``): ``40/8/32`` (default; train 1-40, val 41-48, test 49-80), ``32/8/40`` (train
1-32, val 33-40, test 41-80) and ``40/40`` (test 41-80). The 40/40 protocol has no validation set and
validation must never be the test split, so its validation videos are the last eight training videos
(33-40) and training keeps 1-32: the same partition as 32/8/40, under the name of the protocol run.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.api import (ConfigError, DataError, Dataset, DatasetSpec, FrameIndex, Split, VideoFileFrames, VideoFrames,
                         content_fingerprint, data_root, hookimpl, root_unavailable)
from plugins.datasets.parsing import FieldError, ascii_int, read_lines

PHASES = ("Preparation", "CalotTriangleDissection", "ClippingCutting", "GallbladderDissection",
          "GallbladderPackaging", "CleaningCoagulation", "GallbladderRetraction")
ANNOTATION_FPS = 25
SAMPLE_FPS = 1.0
_HEADER = ("Frame", "Phase")
_MAX_LINE_PROBLEMS = 10
"""Per annotation file, line problems reported one by one before the rest are only counted."""

log = logging.getLogger("sdbench")


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("cholec80", "Cholec80 surgical phases (80 cholecystectomy videos, 7 phases)", Cholec80)]


# --- reading and writing annotation files --------------------------------------------------------------

def read_cholec80(root: Path, videos: Sequence[str] | None = None, sample_fps: float = 1.0) -> dict[str, VideoFrames]:
    """Phase labels ``(N,)`` int64 at ``sample_fps`` of ``videos`` (default: every annotated video)."""
    root = Path(root)
    if videos is None:
        videos = sorted(path.name.removesuffix("-phase.txt")
                        for path in (root / "phase_annotations").glob("*-phase.txt"))
        if not videos:
            raise DataError(f"no phase annotations (videoXX-phase.txt) in {root / 'phase_annotations'}")
    return {video: _read_video(root, video, sample_fps) for video in videos}


def read_phase_annotation(path: Path) -> np.ndarray:
    """The phase index of every 25-fps frame of one annotation file; raises on the first problem."""
    phases, problems = scan_cholec80_annotation(path)
    if problems:
        raise DataError(problems[0])
    return phases


def scan_cholec80_annotation(path: Path) -> tuple[np.ndarray, list[str]]:
    """The phases of every 25-fps frame of one annotation file, and every problem found in it."""
    index = {name: i for i, name in enumerate(PHASES)}
    return scan_annotation(Path(path), lambda fields: tuple(fields) == _HEADER, "the header 'Frame<TAB>Phase'",
                           first_frame=0, phase_of=index.get, known=", ".join(PHASES), what="phase name")


def scan_annotation(path: Path, header_ok: Callable[[list[str]], bool], header: str, first_frame: int,
                    phase_of: Callable[[str], int | None], known: str, what: str) -> tuple[np.ndarray, list[str]]:
    """Read a ``header`` line, then ``frame phase`` lines with consecutive frames from ``first_frame``.

    Returns the phase of each well-formed line and every problem, each naming the file and line. An
    unknown phase is reported once per name (its first line, and on how many lines it occurs), since a
    misspelt name usually repeats on thousands of lines.
    """
    if not path.exists():
        return np.zeros(0, dtype=np.int64), [f"phase annotation {path} is missing"]
    try:
        lines = read_lines(path, f"{header}, then one '<frame><TAB><{what}>' line per frame")
    except DataError as exc:
        return np.zeros(0, dtype=np.int64), [str(exc)]
    problems = []
    if not header_ok(lines[0].split()):
        problems.append(f"{path}, line 1: expected {header}, found {lines[0]!r}")
    if not any(text.strip() for text in lines[1:]):
        problems.append(f"{path}: no '<frame><TAB><{what}>' line after the header; expected one per frame")
    phases: list[int] = []
    unknown: dict[str, list[int]] = {}
    line_problems: list[str] = []
    expected = first_frame
    for number, text in enumerate(lines[1:], 2):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            line_problems.append(f"{path}, line {number}: expected '<frame><TAB><{what}>', found {text!r}")
            continue
        try:
            frame = ascii_int(fields[0], "frame number")
        except FieldError as exc:
            line_problems.append(f"{path}, line {number}: {exc} in '<frame><TAB><{what}>'")
            continue
        if frame != expected:
            line_problems.append(f"{path}, line {number}: expected frame {expected}, found {fields[0]}")
        expected = frame + 1
        phase = phase_of(fields[1])
        if phase is None:
            unknown.setdefault(fields[1], []).append(number)
            continue
        phases.append(phase)
    problems += line_problems[:_MAX_LINE_PROBLEMS]
    if len(line_problems) > _MAX_LINE_PROBLEMS:
        problems.append(f"{path}: {len(line_problems) - _MAX_LINE_PROBLEMS} more malformed or out-of-sequence lines")
    for name, numbers in unknown.items():
        more = f" (on {len(numbers)} lines)" if len(numbers) > 1 else ""
        problems.append(f"{path}, line {numbers[0]}: unknown phase {name!r}{more}; known phases: {known}")
    return np.array(phases, dtype=np.int64), problems


def write_phase_annotation(path: Path, phases_per_25fps_frame: Sequence[int]) -> None:
    """Write one annotation file: the header, then ``frame<TAB>phase name`` per 25-fps frame."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{frame}\t{PHASES[phase]}\n" for frame, phase in enumerate(phases_per_25fps_frame))
    path.write_text("\t".join(_HEADER) + "\n" + rows)


def sample_phases(phases: np.ndarray, annotation_fps: float, sample_fps: float) -> np.ndarray:
    """The labels at ``sample_fps`` of labels given at ``annotation_fps``: frame k takes the annotated frame
    ``round(k * annotation_fps / sample_fps)``."""
    step = annotation_fps / sample_fps
    source_frames = np.rint(np.arange(int(len(phases) / step) + 2) * step).astype(np.int64)
    return phases[source_frames[source_frames < len(phases)]]


def _read_video(root: Path, video: str, sample_fps: float) -> VideoFrames:
    phases = read_phase_annotation(root / "phase_annotations" / f"{video}-phase.txt")
    video_file = root / "videos" / f"{video}.mp4"
    if not video_file.exists():
        raise DataError(f"video file {video_file} is missing (its phase annotation exists)")
    labels = sample_phases(phases, ANNOTATION_FPS, sample_fps)
    return VideoFrames(video, np.arange(len(labels), dtype=np.int64), labels,
                       VideoFileFrames(str(video_file), sample_fps))


# --- video files -----------------------------------------------------------------------------------------

def sampled_length(path: Path, sample_fps: float) -> int:
    """How many frames :func:`harness.data.video.decode_sampled` yields at ``sample_fps``, from the
    container's metadata alone (no decoding): one per sampling instant up to the last frame's timestamp."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path}: no video stream")
            last = _last_frame_time(container, container.streams.video[0])
    except av.FFmpegError as exc:
        raise DataError(f"{path}: cannot open video: {exc}") from exc
    if last is None:
        raise DataError(f"{path}: the container states neither a frame count nor a duration")
    return math.floor(last * sample_fps + 1e-6) + 1


def _last_frame_time(container: Any, stream: Any) -> float | None:
    """Seconds from the first to the last frame, from the frame count or else the duration."""
    rate = float(stream.average_rate) if stream.average_rate else None
    if stream.frames and rate:
        return (stream.frames - 1) / rate
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        return None
    return max(0.0, duration - (1 / rate if rate else 0.0))


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: int) -> None:
    """H.264 yuv420p at ``fps`` from uint8 RGB frames (used to synthesize look-alikes)."""
    import av

    frames = list(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "30"})
        stream.codec_context.thread_count = 1
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def synthetic_frames(rng: np.random.Generator, phases: np.ndarray, size: int = 16) -> np.ndarray:
    """``(T, size, size, 3)`` uint8 frames, one per phase entry: a colour per phase, plus noise."""
    colours = np.linspace(30, 225, 7)[:, None] * np.array([[1.0, 0.6, 0.3]]) + np.array([[0, 40, 90]])
    noise = rng.integers(-12, 13, (len(phases), size, size, 3))
    return np.clip(colours[phases][:, None, None, :] + noise, 0, 255).astype(np.uint8)


def synthetic_timeline(rng: np.random.Generator, length: int, num_phases: int = 7) -> np.ndarray:
    """``length`` phase indices: the phases in order, each a run of about equal length."""
    bounds = np.sort(rng.choice(np.arange(1, length), size=num_phases - 1, replace=False))
    return np.repeat(np.arange(num_phases), np.diff(np.concatenate([[0], bounds, [length]])))


# --- the datasets ----------------------------------------------------------------------------------------

def phase_metrics(labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray, num_classes: int) -> dict[str, float]:
    """Strict video-wise scores and, prefixed ``relaxed_``, the relaxed-boundary scores of the published
    ``Evaluate.m`` (script-exact variant, comparable with published numbers), at 1 fps."""
    from harness.metrics.phase import phase_scores, relaxed_phase_scores

    predictions = np.asarray(probs).argmax(axis=1)
    strict = phase_scores(labels, predictions, video_ids, num_classes)
    relaxed = relaxed_phase_scores(labels, predictions, video_ids, num_classes, fps=SAMPLE_FPS, variant="script")
    return {**{k: float(v) for k, v in strict.items()}, **{f"relaxed_{k}": float(v) for k, v in relaxed.items()}}


class PhaseVideoDataset(Dataset):
    """A phase dataset of one video file and one annotation file per video, sampled at 1 fps.

    Subclasses name their files and parse their annotation format; options: ``root`` and those that
    :meth:`_configure` takes.
    """

    task = "multiclass"
    primary_metric = "accuracy"
    class_names: tuple[str, ...]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.root = data_root(options, self.root_env)
        options.pop("root", None)
        self._configure(options)
        if options:
            raise ConfigError(f"dataset {self.name}: unknown options {sorted(options)}; known: {self._known_options()}")

    def _configure(self, options: dict[str, Any]) -> None:
        """Pop and validate the dataset's own options."""

    def _known_options(self) -> str:
        return "root"

    @abstractmethod
    def videos(self) -> list[str]:
        """Every video of the dataset."""

    @abstractmethod
    def annotation_path(self, video: str) -> Path: ...

    @abstractmethod
    def video_path(self, video: str) -> Path: ...

    @abstractmethod
    def scan_labels(self, video: str) -> tuple[np.ndarray, list[str]]:
        """Labels of ``video`` at 1 fps, and every problem of its annotation file."""

    def availability(self) -> str | None:
        return root_unavailable(self.name, self.root, self.root_env)

    def fingerprint(self) -> str:
        """The bytes of every annotation file, the name and size of every video file and the sampling rate;
        see :mod:`harness.data.fingerprint`."""
        videos = self.videos()
        return content_fingerprint(self.name, self._root(), [self.annotation_path(v) for v in videos],
                                   [self.video_path(v) for v in videos], {"sample_fps": SAMPLE_FPS})

    def index(self) -> FrameIndex:
        return FrameIndex(self.name, self.task, self.class_names, {v: self._index_video(v) for v in self.videos()})

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        return phase_metrics(labels, probs, video_ids, len(self.class_names))

    def check(self) -> list[str]:
        """Every problem of every video of the splits. Videos are opened, not decoded: lengths come from the
        container metadata, as in :meth:`index`."""
        if (reason := self.availability()) is not None:
            return [reason]
        split_videos = dict.fromkeys(v for split in self.splits() for part in (split.train, split.val, split.test)
                                     for v in part)
        return [problem for video in split_videos for problem in self._check_video(video)]

    def _root(self) -> Path:
        if (reason := self.availability()) is not None:
            raise DataError(f"dataset {self.name}: {reason}")
        return self.root

    def _index_video(self, video: str) -> VideoFrames:
        labels, problems = self.scan_labels(video)
        if problems:
            raise DataError("; ".join(problems))
        path = self.video_path(video)
        if not path.exists():
            raise DataError(f"video file {path} is missing (its annotation {self.annotation_path(video)} exists)")
        available = sampled_length(path, SAMPLE_FPS)
        if available < len(labels):
            log.warning("%s %s: %d of %d labelled frames lie beyond the end of %s (%d frames at %g fps); "
                        "dropped", self.name, video, len(labels) - available, len(labels), path, available, SAMPLE_FPS)
            labels = labels[:available]
        return VideoFrames(video, np.arange(len(labels), dtype=np.int64), labels,
                           VideoFileFrames(str(path), SAMPLE_FPS))

    def _check_video(self, video: str) -> list[str]:
        annotation, path = self.annotation_path(video), self.video_path(video)
        if not annotation.exists() and not path.exists():
            return [f"video {video} of the splits is absent: neither {annotation} nor {path} exists"]
        labels, problems = self.scan_labels(video)
        if not path.exists():
            return problems + [f"video file {path} of {video} is missing"]
        try:
            available = sampled_length(path, SAMPLE_FPS)
        except DataError as exc:
            return problems + [f"video {video}: {exc}"]
        if not problems and available != len(labels):
            problems.append(f"video {video}: {len(labels)} frames labelled at {SAMPLE_FPS:g} fps but {path} "
                            f"holds {available} by its container metadata; index() aligns by frame index and "
                            f"uses {min(available, len(labels))}")
        return problems


_SPLITS = {"40/8/32": ((1, 40), (41, 48), (49, 80)),
           "32/8/40": ((1, 32), (33, 40), (41, 80)),
           "40/40": ((1, 32), (33, 40), (41, 80))}
"""Per protocol, the inclusive video number ranges of train, val and test (see the module docstring)."""


class Cholec80(PhaseVideoDataset):
    """Cholec80 phases at 1 fps. Options: ``root`` (else ``$SDBENCH_CHOLEC80_ROOT``) and ``split``."""

    name = "cholec80"
    root_env = "SDBENCH_CHOLEC80_ROOT"
    class_names = PHASES

    def _configure(self, options: dict[str, Any]) -> None:
        self.split = options.pop("split", "40/8/32")
        if self.split not in _SPLITS:
            raise ConfigError(f"dataset {self.name}: unknown split {self.split!r}; known: {', '.join(_SPLITS)}")

    def _known_options(self) -> str:
        return "root, split"

    def videos(self) -> list[str]:
        return [f"video{number:02d}" for number in range(1, 81)]

    def annotation_path(self, video: str) -> Path:
        return self._root() / "phase_annotations" / f"{video}-phase.txt"

    def video_path(self, video: str) -> Path:
        return self._root() / "videos" / f"{video}.mp4"

    def scan_labels(self, video: str) -> tuple[np.ndarray, list[str]]:
        phases, problems = scan_cholec80_annotation(self.annotation_path(video))
        return sample_phases(phases, ANNOTATION_FPS, SAMPLE_FPS), problems

    def splits(self) -> list[Split]:
        train, val, test = ([f"video{n:02d}" for n in range(a, b + 1)] for a, b in _SPLITS[self.split])
        return [Split(self.split, tuple(train), tuple(val), tuple(test))]

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """All 80 videos, each 4-6 s of 16x16 H.264 at 25 fps with a colour per phase, and their annotations."""
        directory = Path(directory)
        for number in range(1, 81):
            rng = np.random.default_rng([80, number])
            phases = synthetic_timeline(rng, int(rng.integers(4, 7)) * ANNOTATION_FPS)
            encode_video(directory / "videos" / f"video{number:02d}.mp4", synthetic_frames(rng, phases), ANNOTATION_FPS)
            write_phase_annotation(directory / "phase_annotations" / f"video{number:02d}-phase.txt", phases)
