"""Reader and writer of the CholecT45 layout (action triplets at 1 fps).

::

    data/VID01/000000.png ...            frames, named by their 0-based index at 1 fps
    triplet/VID01.txt                    frame, then 100 binary columns; comma-separated, no header
    instrument/ verb/ target/VID01.txt   frame, then 6 / 10 / 15 binary columns
    dict/{triplet,instrument,verb,target,maps}.txt

This module reads the triplet labels and lists the frames; the writer produces the full layout (the demo
dataset uses it). The triplet -> component table is the ``maps.txt`` that ships with ivtmetrics.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.data.dataset import ImageFrames, VideoFrames
from harness.errors import DataError

NUM_TRIPLETS = 100
INSTRUMENTS = ("grasper", "bipolar", "hook", "scissors", "clipper", "irrigator")
VERBS = ("grasp", "retract", "dissect", "coagulate", "clip", "cut", "aspirate", "irrigate", "pack", "null_verb")
TARGETS = ("gallbladder", "cystic_plate", "cystic_duct", "cystic_artery", "cystic_pedicle", "blood_vessel",
           "fluid", "abdominal_wall_cavity", "liver", "adhesion", "omentum", "peritoneum", "gut", "specimen_bag",
           "null_target")
COMPONENTS = {"instrument": INSTRUMENTS, "verb": VERBS, "target": TARGETS}


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
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            key, sep, name = line.partition(":")
            if not sep or not key.strip().isdigit() or int(key) not in names:
                raise DataError(f"{path}, line {number}: expected 'ID:instrument,verb,target' with ID in 0-99, "
                                f"found {line!r}")
            names[int(key)] = name.strip()
    return tuple(names.values())


def triplet_maps() -> np.ndarray:
    """The ``(100, 6)`` table ``IVT, I, V, T, IV, IT`` of ivtmetrics' ``maps.txt``."""
    return np.loadtxt(_maps_file(), delimiter=",", comments="#", dtype=np.int64)


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


@functools.cache
def _maps_file() -> Path:
    # Located without importing ivtmetrics, whose import pulls in scikit-learn (about a second).
    spec = importlib.util.find_spec("ivtmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the triplet table maps.txt ships with ivtmetrics, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "maps.txt"


def _read_video(root: Path, video: str) -> VideoFrames:
    label_file = root / "triplet" / f"{video}.txt"
    frame_ids, labels, lines = _read_label_file(label_file, NUM_TRIPLETS)
    frame_dir = root / "data" / video
    present = set(os.listdir(frame_dir)) if frame_dir.is_dir() else set()
    paths = []
    for frame, line in zip(frame_ids, lines):
        image = frame_dir / f"{frame:06d}.png"
        if image.name not in present:
            raise DataError(f"{label_file}, line {line}: frame {frame} is labelled but {image} is missing")
        paths.append(str(image))
    return VideoFrames(video, frame_ids, labels, ImageFrames(tuple(paths)))


def _read_label_file(path: Path, width: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Frame ids, binary labels ``(N, width)`` and the line number of each row of one label file."""
    if not path.exists():
        raise DataError(f"label file {path} is missing")
    rows: list[list[int]] = []
    line_of_frame: dict[int, int] = {}
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        fields = text.split(",")
        if len(fields) != width + 1:
            raise DataError(f"{path}, line {number}: expected {width + 1} comma-separated columns (frame, then "
                            f"{width} labels), found {len(fields)}")
        try:
            row = [int(field) for field in fields]
        except ValueError:
            raise DataError(f"{path}, line {number}: expected integers, found {text.strip()!r}") from None
        if not set(row[1:]) <= {0, 1}:
            raise DataError(f"{path}, line {number}: labels must be 0 or 1, found {sorted(set(row[1:]) - {0, 1})}")
        if row[0] in line_of_frame:
            raise DataError(f"{path}, line {number}: frame {row[0]} is already labelled on line "
                            f"{line_of_frame[row[0]]}")
        line_of_frame[row[0]] = number
        rows.append(row)
    table = np.array(rows, dtype=np.int64).reshape(-1, width + 1)
    return table[:, 0], table[:, 1:].astype(np.uint8), list(line_of_frame.values())


def _write_label_file(path: Path, frame_ids: Sequence[int], labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.column_stack([np.asarray(frame_ids, dtype=np.int64), labels.astype(np.int64)])
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows.tolist()))


def _write_dict(root: Path) -> None:
    folder = root / "dict"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "maps.txt").write_text(_maps_file().read_text())
    triplets = [f"{ivt}:{INSTRUMENTS[i]},{VERBS[v]},{TARGETS[t]}" for ivt, i, v, t, *_ in triplet_maps()]
    (folder / "triplet.txt").write_text("\n".join(triplets) + "\n")
    for component, names in COMPONENTS.items():
        (folder / f"{component}.txt").write_text("".join(f"{i}:{name}\n" for i, name in enumerate(names)))
