"""Reader and writer of the CholecT45 layout (action triplets at 1 fps).

::

    data/VID01/000000.png ...            frames, named by their 0-based index at 1 fps
    triplet/VID01.txt                    frame, then 100 binary columns; comma-separated, no header
    instrument/ verb/ target/VID01.txt   frame, then 6 / 10 / 15 binary columns
    dict/{triplet,instrument,verb,target,maps}.txt

This module reads the triplet labels and lists the frames; the writer produces the full layout (the demo
dataset uses it). The triplet -> component table is the ``maps.txt`` that ships with ivtmetrics. The
``cholect45`` plugin (:class:`CholecT45`) reads a real copy under ``dataset_options.cholect45.root`` or
``$SDBENCH_CHOLECT45_ROOT``; splits, options and metrics are in ``cholect_common``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from harness.api import DataError, DatasetSpec, VideoFrames, hookimpl
from plugins.datasets.cholect_common import (COMPONENTS, FOLDS, INSTRUMENTS, NUM_TRIPLETS, T45_VIDEOS, TARGETS, VERBS,
                                             CholecTriplets, challenge_split, cv_splits, frame_coverage, image_frames,
                                             maps_file, random_png, random_triplet_labels, triplet_maps, video_name)
from plugins.datasets.parsing import FieldError, ascii_int, read_lines

__all__ = ["COMPONENTS", "INSTRUMENTS", "NUM_TRIPLETS", "TARGETS", "VERBS", "CholecT45", "read_cholect45",
           "read_class_names", "triplet_maps", "write_cholect45_labels"]

ROOT_ENV = "SDBENCH_CHOLECT45_ROOT"


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("cholect45", "CholecT45 action triplets (45 videos at 1 fps; official 5-fold CV)",
                        CholecT45)]


def read_cholect45(root: Path, videos: Sequence[str] | None = None) -> dict[str, VideoFrames]:
    """Triplet labels ``(N, 100)`` uint8 and frame images of ``videos`` (default: every ``triplet/*.txt``)."""
    root = Path(root)
    if videos is None:
        videos = sorted(path.stem for path in (root / "triplet").glob("*.txt"))
        if not videos:
            raise DataError(f"no triplet label files (VIDxx.txt) in {root / 'triplet'}")
    return {video: _read_video(root, video) for video in videos}


def read_class_names(root: Path) -> tuple[str, ...]:
    """Triplet names ``instrument,verb,target`` from ``dict/triplet.txt``; ``triplet_<ID>`` where not listed."""
    names = {i: f"triplet_{i}" for i in range(NUM_TRIPLETS)}
    path = Path(root) / "dict" / "triplet.txt"
    if path.exists():
        for number, line in enumerate(read_lines(path, "'ID:instrument,verb,target' lines"), 1):
            if not line.strip():
                continue
            key, sep, name = line.partition(":")
            try:
                if not sep:
                    raise FieldError("no ':'")
                names[ascii_int(key, "triplet ID", maximum=NUM_TRIPLETS - 1)] = name.strip()
            except FieldError as exc:
                raise DataError(f"{path}, line {number}: expected 'ID:instrument,verb,target' with ID in 0-99, "
                                f"found {line!r} ({exc})") from None
    return tuple(names.values())


def write_cholect45_labels(root: Path, video: str, frame_ids: Sequence[int], triplet_labels: np.ndarray) -> None:
    """Write ``triplet/``, the derived ``instrument/``, ``verb/``, ``target/`` files of ``video`` and ``dict/``.

    A component is positive in a frame when any triplet that contains it is.
    """
    root = Path(root)
    labels = np.asarray(triplet_labels, dtype=np.uint8)
    if labels.shape != (len(frame_ids), NUM_TRIPLETS):
        raise ValueError(f"triplet labels must be ({len(frame_ids)}, {NUM_TRIPLETS}), got {labels.shape}")
    _write_dict(root)
    maps = triplet_maps()
    _write_label_file(root / "triplet" / f"{video}.txt", frame_ids, labels)
    for column, (component, names) in enumerate(COMPONENTS.items(), 1):
        one_hot = np.eye(len(names), dtype=np.int64)[maps[:, column]]
        _write_label_file(root / component / f"{video}.txt", frame_ids, (labels @ one_hot > 0).astype(np.uint8))


def _read_video(root: Path, video: str) -> VideoFrames:
    label_file = root / "triplet" / f"{video}.txt"
    frame_ids, labels = _read_label_file(label_file, NUM_TRIPLETS)
    return VideoFrames(video, frame_ids, labels, image_frames(video, label_file, root / "data" / video, frame_ids))


def _read_label_file(path: Path, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame ids and binary labels ``(N, width)`` of one label file."""
    frame_ids, labels, problems = _scan_label_file(path, width)
    if problems:
        raise DataError(problems[0])
    return frame_ids, labels


def _scan_label_file(path: Path, width: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Like :func:`_read_label_file`, but every faulty row is reported and left out instead of raising."""
    empty = np.zeros(0, np.int64), np.zeros((0, width), np.uint8)
    if not path.exists():
        return *empty, [f"label file {path} is missing"]
    try:
        lines = read_lines(path, f"one row per frame: the frame number, then {width} comma-separated 0/1 labels")
    except DataError as exc:
        return *empty, [str(exc)]
    rows: list[list[int]] = []
    line_of_frame: dict[int, int] = {}
    problems = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        problem, row = _parse_row(text, width)
        if problem is None and row[0] in line_of_frame:
            problem = f"frame {row[0]} is already labelled on line {line_of_frame[row[0]]}"
        if problem is not None:
            problems.append(f"{path}, line {number}: {problem}")
            continue
        line_of_frame[row[0]] = number
        rows.append(row)
    table = np.array(rows, dtype=np.int64).reshape(-1, width + 1)
    return table[:, 0], table[:, 1:].astype(np.uint8), problems


def _parse_row(text: str, width: int) -> tuple[str | None, list[int]]:
    """The integers of one label row, or what is wrong with it."""
    fields = text.split(",")
    if len(fields) != width + 1:
        return (f"expected {width + 1} comma-separated columns (frame, then {width} labels), "
                f"found {len(fields)}"), []
    row = []
    for column, field in enumerate(fields, 1):
        try:
            row.append(ascii_int(field, "frame number") if column == 1 else ascii_int(field, "label", maximum=1))
        except FieldError as exc:
            return f"column {column}: {exc}", []
    return None, row


def _write_label_file(path: Path, frame_ids: Sequence[int], labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.column_stack([np.asarray(frame_ids, dtype=np.int64), labels.astype(np.int64)])
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows.tolist()))


def _write_dict(root: Path) -> None:
    folder = root / "dict"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "maps.txt").write_text(maps_file().read_text())
    triplets = [f"{ivt}:{INSTRUMENTS[i]},{VERBS[v]},{TARGETS[t]}" for ivt, i, v, t, *_ in triplet_maps()]
    (folder / "triplet.txt").write_text("\n".join(triplets) + "\n")
    for component, names in COMPONENTS.items():
        (folder / f"{component}.txt").write_text("".join(f"{i}:{name}\n" for i, name in enumerate(names)))


class CholecT45(CholecTriplets):
    """CholecT45 in its official layout. Protocol ``cv`` (the five official folds) only: the challenge and
    Rendezvous splits test on CholecT50 videos."""

    name = "cholect45"
    root_env = ROOT_ENV
    label_folder = "triplet"
    dataset_videos = T45_VIDEOS
    protocols = {"cv": lambda folds: cv_splits(FOLDS, folds), "challenge": lambda _: [challenge_split()]}

    def label_path(self, video: str) -> Path:
        return self.root / "triplet" / f"{video}.txt"

    def label_files(self) -> list[Path]:
        folders = ("triplet", *COMPONENTS) if self.all_targets else ("triplet",)
        return [path for folder in folders for path in (self.root / folder).glob("*.txt")]

    def class_names(self) -> tuple[str, ...]:
        names = read_class_names(self.root)
        return names + super().class_names()[NUM_TRIPLETS:]

    def read_video(self, video: str) -> VideoFrames:
        frames = _read_video(self.root, video)
        if not self.all_targets:
            return frames
        parts = [frames.labels]
        for component, names in COMPONENTS.items():
            path = self.root / component / f"{video}.txt"
            frame_ids, labels = _read_label_file(path, len(names))
            if not np.array_equal(frame_ids, frames.frame_ids):
                raise DataError(_frames_differ(path, frames.frame_ids, frame_ids))
            parts.append(labels)
        return VideoFrames(video, frames.frame_ids, np.hstack(parts), frames.source)

    def check_label_file(self, path: Path) -> list[str]:
        """Rows of ``triplet/`` files are checked against the PNGs; component files against the triplet rows."""
        if path.parent.name != "triplet":
            return self._check_component_file(path)
        frame_ids, _, problems = _scan_label_file(path, NUM_TRIPLETS)
        coverage, _ = frame_coverage(path.stem, path, self.root / "data" / path.stem, frame_ids,
                                     count_unlabelled=not problems)
        return problems + ([coverage] if coverage else [])

    def _check_component_file(self, path: Path) -> list[str]:
        frame_ids, _, problems = _scan_label_file(path, len(COMPONENTS[path.parent.name]))
        triplet_file = self.root / "triplet" / path.name
        if triplet_file.exists():
            expected = _scan_label_file(triplet_file, NUM_TRIPLETS)[0]
            if not problems and not np.array_equal(frame_ids, expected):
                problems.append(_frames_differ(path, expected, frame_ids))
        return problems

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """All 45 official videos with 3-4 frames each (16x16 noise PNGs), random labels, every frame with a
        positive triplet; deterministic."""
        for number in T45_VIDEOS:
            rng = np.random.default_rng([45, number])
            labels = random_triplet_labels(rng, int(rng.integers(3, 5)))
            video = video_name(number)
            for frame in range(len(labels)):
                random_png(Path(directory) / "data" / video / f"{frame:06d}.png", rng)
            write_cholect45_labels(directory, video, range(len(labels)), labels)


def _frames_differ(path: Path, expected: np.ndarray, found: np.ndarray) -> str:
    return (f"{path}: expected the frames of the triplet file ({len(expected)} rows, "
            f"{_span(expected)}), found {len(found)} rows, {_span(found)}")


def _span(frame_ids: np.ndarray) -> str:
    return f"frames {frame_ids.min()}-{frame_ids.max()}" if len(frame_ids) else "no frames"
