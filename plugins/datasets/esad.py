"""SARAS-ESAD (surgeon action detection in robot-assisted radical prostatectomy) as frame-level multi-label
classification.

::

    train/obj.names                           the 21 class names, one a line (optional)
    train/set1/RARP1_frame_12.jpg, .txt       one YOLO label file per image: "class xc yc w h", normalised
    train/set2/...
    val/obj/...
    test/obj/...

Frame labels: class c is positive in a frame when any box of class c is in it. About 45% of the images have
no box (an empty label file, or none). Every frame of the videos was annotated, so a frame without a box is
one where no listed action is visible: option ``unlabeled: negative`` (default) keeps it with an all-zero
row, which is the truthful label and keeps the action rates of the data; ``unlabeled: drop`` leaves it out.

A video is ``RARPk`` from the file names; where the same ``RARPk`` occurs in two folders, each becomes
``RARPk-<folder>`` (``RARP3-set1``) so that videos stay unique.

Split (one): training videos from ``train/``; validation = the last training videos (in file-name order)
that together hold about 15% of the training frames, at least one video; test = the official ``val/obj``,
since the official test labels are not public in most copies. Where ``test/obj`` holds label files, option
``test_split: test`` tests on it instead (``val/obj`` then goes unused).

Metrics: frame-level mAP over all test frames pooled (``mAP``, primary; the official metric is box AP,
which needs boxes) and the video-wise mAP (``video_mAP``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.api import (ConfigError, DataError, Dataset, DatasetSpec, FrameIndex, ImageFrames, Split, VideoFrames,
                         content_fingerprint, data_root, hookimpl, root_unavailable)
from plugins.datasets.parsing import FieldError, ascii_float, ascii_int, plural, read_lines, read_text

CLASSES = ("CuttingMesocolon", "PullingVasDeferens", "ClippingVasDeferens", "CuttingVasDeferens",
           "ClippingTissue", "PullingSeminalVesicle", "ClippingSeminalVesicle", "CuttingSeminalVesicle",
           "SuckingBlood", "SuckingSmoke", "PullingTissue", "CuttingTissue", "BaggingProstate",
           "BladderNeckDissection", "BladderAnastomosis", "PullingProstate", "ClippingBladderNeck", "CuttingThread",
           "UrethraDissection", "CuttingProstate", "PullingBladderNeck")
TRAIN_FOLDERS = ("train/set1", "train/set2")
TEST_FOLDERS = {"val": "val/obj", "test": "test/obj"}
VAL_SHARE = 0.15
_FRAME = re.compile(r"(RARP[0-9]+)_frame_([0-9]+)")
_UNLABELED = ("negative", "drop")


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("esad", "SARAS-ESAD prostatectomy actions as frame-level multi-label (21 classes)", Esad)]


@dataclass
class _Scan:
    """What one pass over the label and image files found: frames per video, and every problem."""

    frames: dict[str, list[tuple[int, Path, np.ndarray]]] = field(default_factory=dict)
    folder_of: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Esad(Dataset):
    """Options: ``root`` (else ``$SDBENCH_ESAD_ROOT``), ``unlabeled`` (negative, drop), ``test_split`` (val, test)."""

    name = "esad"
    task = "multilabel"
    primary_metric = "mAP"
    root_env = "SDBENCH_ESAD_ROOT"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.root = data_root(options, self.root_env)
        options.pop("root", None)
        self.unlabeled = options.pop("unlabeled", "negative")
        self.test_split = options.pop("test_split", "val")
        if options:
            raise ConfigError(f"dataset esad: unknown options {sorted(options)}; known: root, unlabeled, test_split")
        if self.unlabeled not in _UNLABELED:
            raise ConfigError(f"dataset esad: unlabeled must be one of {', '.join(_UNLABELED)}, got {self.unlabeled!r}")
        if self.test_split not in TEST_FOLDERS:
            raise ConfigError(f"dataset esad: test_split must be one of {', '.join(TEST_FOLDERS)}, "
                              f"got {self.test_split!r}")

    def availability(self) -> str | None:
        return root_unavailable(self.name, self.root, self.root_env)

    def class_names(self) -> tuple[str, ...]:
        """From ``train/obj.names`` when present, else the published order."""
        path = self._root() / "train" / "obj.names"
        if not path.exists():
            return CLASSES
        names = tuple(line.strip() for line in read_lines(path, "the class names, one a line") if line.strip())
        if len(names) != len(CLASSES):
            raise DataError(f"{path}: expected {len(CLASSES)} class names, found {len(names)}")
        return names

    def fingerprint(self) -> str:
        """The bytes of the class names and of every label file, the name and size of every image of the folders
        in use (extensions in any case, as the reader takes them), and the options that change labels; see
        :mod:`harness.data.fingerprint`."""
        root = self._root()
        labels, images = [root / "train" / "obj.names"], []
        for folder in self._folders():
            files = list((root / folder).iterdir()) if (root / folder).is_dir() else []
            labels += [path for path in files if path.suffix.lower() == ".txt"]
            images += [path for path in files if path.suffix.lower() == ".jpg"]
        return content_fingerprint(self.name, root, labels, images,
                                   {"unlabeled": self.unlabeled, "test_split": self.test_split})

    def index(self) -> FrameIndex:
        return self._index(self._scan())

    def splits(self) -> list[Split]:
        scan = self._scan()
        index = self._index(scan)
        train = [v for v in index.videos if scan.folder_of[v] in TRAIN_FOLDERS]
        test = [v for v in index.videos if scan.folder_of[v] == TEST_FOLDERS[self.test_split]]
        if len(train) < 2:
            raise DataError(f"dataset esad: {len(train)} training video(s) under {self.root / 'train'}; "
                            "validation needs at least one more")
        val = _validation_videos([len(index.videos[v]) for v in train], train)
        return [Split(f"train/{self.test_split}", tuple(v for v in train if v not in val), tuple(val), tuple(test))]

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        from harness.metrics.ranking import frame_map, video_wise_map

        return {"mAP": frame_map(labels, probs), "video_mAP": video_wise_map(labels, probs, video_ids)}

    def check(self) -> list[str]:
        """Malformed label lines, class indices out of range, label files without an image (counted per video),
        file names that are not ``RARPk_frame_n``, two files of one frame whose extensions differ only in case,
        missing folders. Images without a label file are fine (no box)."""
        if (reason := self.availability()) is not None:
            return [reason]
        problems = self._scan().problems
        try:
            self.class_names()
        except DataError as exc:
            problems.insert(0, str(exc))
        return problems

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """Six RARP videos of 16x16 JPEGs (40 frames): two per training set, one in val/obj with labels, one
        in test/obj without (as in most copies); about 45% of the frames without a box."""
        from PIL import Image

        directory = Path(directory)
        (directory / "train").mkdir(parents=True, exist_ok=True)
        (directory / "train" / "obj.names").write_text("\n".join(CLASSES) + "\n")
        layout = (("train/set1", 1, 6), ("train/set1", 2, 6), ("train/set2", 3, 6), ("train/set2", 4, 6),
                  ("val/obj", 5, 8), ("test/obj", 6, 8))
        for folder, k, count in layout:
            rng = np.random.default_rng([21, k])
            (directory / folder).mkdir(parents=True, exist_ok=True)
            for n in range(1, count + 1):
                stem = directory / folder / f"RARP{k}_frame_{n * 5}"
                classes = rng.choice(4, size=int(rng.choice(3, p=(0.45, 0.35, 0.2))), replace=False)
                pixels = np.full((16, 16, 3), 60, dtype=np.uint8)
                for c in classes:
                    pixels[4 * c:4 * c + 4] = (200, 40 * c, 90)
                Image.fromarray(pixels).save(stem.with_suffix(".jpg"), quality=90)
                if folder != "test/obj":
                    boxes = rng.uniform(0.2, 0.6, (len(classes), 4))
                    stem.with_suffix(".txt").write_text("".join(f"{c} " + " ".join(f"{x:.4f}" for x in box) + "\n"
                                                                for c, box in zip(classes, boxes)))

    def _root(self) -> Path:
        if (reason := self.availability()) is not None:
            raise DataError(f"dataset esad: {reason}")
        return self.root

    def _index(self, scan: _Scan) -> FrameIndex:
        """The frames of ``scan``, less those without a box under ``unlabeled: drop``; raises on any problem."""
        if scan.problems:
            more = f"; and {len(scan.problems) - 5} more problems" if len(scan.problems) > 5 else ""
            raise DataError("; ".join(scan.problems[:5]) + more)
        videos = {}
        for video, frames in scan.frames.items():
            kept = [f for f in frames if self.unlabeled == "negative" or f[2].any()]
            if kept:
                videos[video] = VideoFrames(video, np.array([n for n, _, _ in kept], dtype=np.int64),
                                            np.stack([row for _, _, row in kept]),
                                            ImageFrames(tuple(str(path) for _, path, _ in kept)))
        return FrameIndex(self.name, self.task, self.class_names(), videos)

    def _folders(self) -> tuple[str, ...]:
        return (*TRAIN_FOLDERS, TEST_FOLDERS[self.test_split])

    def _scan(self) -> _Scan:
        """Read every label file and list every image of the folders in use."""
        root, scan = self._root(), _Scan()
        num_classes = len(CLASSES)
        if self.test_split == "test" and not any((root / TEST_FOLDERS["test"]).glob("*.[tT][xX][tT]")):
            scan.problems.append(f"test_split 'test': {root / TEST_FOLDERS['test']} holds no label files")
        per_folder: dict[str, dict[str, list[tuple[int, Path, np.ndarray]]]] = {}
        for folder in self._folders():
            if not (root / folder).is_dir():
                scan.problems.append(f"folder {root / folder} is missing")
                continue
            per_folder[folder] = _scan_folder(root / folder, num_classes, scan.problems)
        owners: dict[str, list[str]] = {}
        for folder, videos in per_folder.items():
            for video in videos:
                owners.setdefault(video, []).append(folder)
        for folder, videos in per_folder.items():
            for video, frames in sorted(videos.items(), key=lambda item: int(item[0][4:])):
                unique = video if len(owners[video]) == 1 else f"{video}-{folder.rsplit('/', 1)[-1]}"
                scan.frames[unique] = sorted(frames, key=lambda f: f[0])
                scan.folder_of[unique] = folder
        return scan


def _scan_folder(folder: Path, num_classes: int, problems: list[str]) -> dict[str, list[tuple[int, Path, np.ndarray]]]:
    """Per video ``RARPk`` of one folder: (frame number, image, label row) of each image; problems appended.

    Label files without an image are reported per video, with their count and the first one."""
    images, label_files = _files_by_stem(folder, ".jpg", problems), _files_by_stem(folder, ".txt", problems)
    videos: dict[str, list[tuple[int, Path, np.ndarray]]] = {}
    for stem, image in sorted(images.items()):
        if image is None:
            continue
        match = _FRAME.fullmatch(stem)
        if match is None:
            problems.append(f"image {image}: name is not RARP<k>_frame_<n>.jpg")
            continue
        try:
            frame = ascii_int(match[2], "frame number")
        except FieldError as exc:
            problems.append(f"image {image}: {exc}")
            continue
        row = _read_labels(label_files.get(stem), num_classes, problems)
        videos.setdefault(match[1], []).append((frame, image, row))
    orphans: dict[str, list[str]] = {}
    for stem, label_file in sorted(label_files.items()):
        if stem not in images:
            match = _FRAME.fullmatch(stem)
            orphans.setdefault(f"video {match[1]} in {folder}" if match else str(folder), []).append(label_file.name)
    for where, names in orphans.items():
        problems.append(f"{where}: {plural(len(names), 'label file')} without an image file (first: {names[0]})")
    return videos


def _files_by_stem(folder: Path, suffix: str, problems: list[str]) -> dict[str, Path | None]:
    """The files of ``folder`` whose extension is ``suffix`` in any case (``.JPG`` from a copy made on a
    case-insensitive file system), by stem; None for a stem with two such files (ambiguous, reported)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == suffix:
            found.setdefault(path.stem, []).append(path)
    for stem, paths in found.items():
        if len(paths) > 1:
            problems.append(f"{folder}: {' and '.join(p.name for p in paths)} differ only in the case of their "
                            f"extension; expected one {suffix} file per frame, keep one of them")
    return {stem: paths[0] if len(paths) == 1 else None for stem, paths in found.items()}


def _read_labels(path: Path | None, num_classes: int, problems: list[str]) -> np.ndarray:
    """The multi-label row of one YOLO label file (all zero when there is none, or it is empty: no box);
    problems appended."""
    row = np.zeros(num_classes, dtype=np.uint8)
    if path is None:
        return row
    try:
        lines = read_text(path).splitlines()
    except DataError as exc:
        problems.append(str(exc))
        return row
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            problems.append(f"{path}, line {number}: expected 'class xc yc w h', found {line!r}")
            continue
        try:
            label = ascii_int(fields[0], "class index", maximum=num_classes - 1)
            for value in fields[1:]:
                ascii_float(value, "box coordinate")
        except FieldError as exc:
            problems.append(f"{path}, line {number}: {exc}")
            continue
        row[label] = 1
    return row


def _validation_videos(frame_counts: list[int], videos: list[str]) -> list[str]:
    """The last videos whose frames together reach :data:`VAL_SHARE` of all; at least one, never all."""
    target, total, val = VAL_SHARE * sum(frame_counts), 0, []
    for video, count in zip(reversed(videos), reversed(frame_counts)):
        if (total >= target and val) or len(val) == len(videos) - 1:
            break
        val.append(video)
        total += count
    return val[::-1]
