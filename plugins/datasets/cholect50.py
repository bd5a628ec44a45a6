"""CholecT50 (action triplets at 1 fps, 50 videos) in its official layout.

::

    videos/VID01/000000.png ...     frames, named by their 0-based index at 1 fps
    labels/VID01.json               keys video, fps, num_frames, categories, annotations
    label_mapping.txt               the triplet table (maps.txt)

``annotations`` maps a frame id string to a list of 15-number instances ``[IVT, I, I_score, I_x, I_y, I_w,
I_h, V, T, T_score, T_x, T_y, T_w, T_h, PHASE]``, -1 where absent. A frame's label is binarised: a triplet
is positive when any instance names it (one triplet may occur twice); an all -1 instance means no triplet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import DataError, DatasetSpec, VideoFrames, hookimpl
from plugins.datasets.cholect_common import (ALL_WIDTH, COMPONENTS, FOLDS, NUM_TRIPLETS, T50_EXTRA, T50_VIDEOS,
                                             CholecTriplets, challenge_split, cv_splits, frame_coverage, image_frames,
                                             maps_file, random_png, random_triplet_labels, rdv_split, triplet_maps,
                                             video_name)
from plugins.datasets.parsing import FieldError, ascii_float, ascii_int, read_text

ROOT_ENV = "SDBENCH_CHOLECT50_ROOT"
KEYS = ("video", "fps", "num_frames", "categories", "annotations")
INSTANCE_LENGTH = 15
FIELDS = {"IVT": (0, NUM_TRIPLETS), "I": (1, len(COMPONENTS["instrument"])), "V": (7, len(COMPONENTS["verb"])),
          "T": (8, len(COMPONENTS["target"]))}
"""Per labelled field: its position in an instance and the number of its classes."""
FOLDS_T50 = {k: videos + (T50_EXTRA[k],) for k, videos in FOLDS.items()}


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("cholect50", "CholecT50 action triplets (50 videos at 1 fps; cv, challenge or rdv split)",
                        CholecT50)]


class CholecT50(CholecTriplets):
    """CholecT50. Protocols: ``cv`` (official folds with one extra video each), ``challenge``, ``rdv``.

    With ``targets: all`` the 31 component columns come from the instances' I, V and T fields.
    """

    name = "cholect50"
    root_env = ROOT_ENV
    label_folder = "labels"
    dataset_videos = T50_VIDEOS
    protocols = {"cv": lambda folds: cv_splits(FOLDS_T50, folds), "challenge": lambda _: [challenge_split()],
                 "rdv": lambda _: [rdv_split()]}

    def label_path(self, video: str) -> Path:
        return self.root / "labels" / f"{video}.json"

    def label_files(self) -> list[Path]:
        return list((self.root / "labels").glob("*.json"))

    def read_video(self, video: str) -> VideoFrames:
        path = self.label_path(video)
        if not path.exists():
            raise DataError(f"label file {path} is missing")
        frame_ids, labels, problems = read_label_json(path, self.all_targets)
        if problems:
            raise DataError(problems[0])
        return VideoFrames(video, frame_ids, labels, image_frames(video, path, self.root / "videos" / video, frame_ids))

    def check_label_file(self, path: Path) -> list[str]:
        frame_ids, _, problems = read_label_json(path, self.all_targets)
        coverage, _ = frame_coverage(path.stem, path, self.root / "videos" / path.stem, frame_ids,
                                     count_unlabelled=not problems)
        return problems + ([coverage] if coverage else [])

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """All 50 videos with 3-4 frames each (16x16 noise PNGs); frame 0 always holds a triplet, later
        frames may hold none (an all -1 instance) or the same triplet twice; deterministic."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "label_mapping.txt").write_text(maps_file().read_text())
        maps = triplet_maps()
        for number in T50_VIDEOS:
            rng = np.random.default_rng([50, number])
            labels = random_triplet_labels(rng, int(rng.integers(3, 5)))
            video = video_name(number)
            annotations = {}
            for frame, row in enumerate(labels):
                random_png(directory / "videos" / video / f"{frame:06d}.png", rng)
                annotations[str(frame)] = _instances(rng, maps, np.flatnonzero(row), empty=frame > 0)
            document = {"video": number, "fps": 1, "num_frames": len(labels), "categories": {},
                        "annotations": annotations}
            (directory / "labels").mkdir(exist_ok=True)
            (directory / "labels" / f"{video}.json").write_text(json.dumps(document))


def read_label_json(path: Path, all_targets: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Frame ids (sorted), binarised labels ``(N, 100)`` or ``(N, 131)``, and every problem of one JSON file.

    Frames with a problem are left out of the labels.
    """
    width = ALL_WIDTH if all_targets else NUM_TRIPLETS
    empty = np.zeros(0, np.int64), np.zeros((0, width), np.uint8)
    try:
        document = _load_json(path)
    except DataError as exc:
        return *empty, [str(exc)]
    missing = [key for key in KEYS if not isinstance(document, dict) or key not in document]
    if missing:
        return *empty, [f"{path}: expected keys {', '.join(KEYS)}, missing {', '.join(missing)}"]
    annotations = document["annotations"]
    if not isinstance(annotations, _Object) or not annotations:
        found = "an empty object" if isinstance(annotations, _Object) else type(annotations).__name__
        return *empty, [f"{path}: expected 'annotations' to map frame ids to instance lists, found {found}"]
    frames, rows, problems = [], [], []
    key_of: dict[int, str] = {}
    for key, instances in annotations.pairs:
        try:
            frame = ascii_int(key, "frame number (key)")
        except FieldError as exc:
            problems.append(f"{path}, frame {key!r}: {exc}")
            continue
        if frame in key_of:
            problems.append(f"{path}: frame keys {key_of[frame]!r} and {key!r} both name frame {frame}; "
                            "expected one entry per frame")
            continue
        key_of[frame] = key
        problem, row = _frame_label(instances, width, all_targets)
        if problem:
            problems.append(f"{path}, frame {key!r}: {problem}")
        else:
            frames.append(frame)
            rows.append(row)
    order = np.argsort(frames, kind="stable")
    return (np.array(frames, np.int64)[order], np.array(rows, np.uint8).reshape(-1, width)[order], problems)


class _Object(dict):
    """A JSON object that keeps its key-value pairs as written, duplicate keys included (a ``dict`` keeps the
    last value of a key and hides the others)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs


def _load_json(path: Path) -> Any:
    """The document of one JSON label file; a :class:`DataError` naming the file when it is empty, not UTF-8,
    not JSON, or holds NaN, Infinity or a number beyond 64 bits (which Python's json reads by default)."""
    text = read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected a JSON object with keys {', '.join(KEYS)}")
    try:
        return json.loads(text, object_pairs_hook=_Object, parse_constant=_refuse_constant,
                          parse_float=lambda number: ascii_float(number, "number"), parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    except FieldError as exc:
        raise DataError(f"{path}: {exc}") from None


def _refuse_constant(name: str) -> None:
    raise FieldError(f"found {name}, which is not a JSON number; expected finite numbers")


def _json_int(number: str) -> int:
    """A JSON integer, bounded so that a huge one is reported instead of making ``int()`` raise."""
    return -ascii_int(number[1:], "integer") if number.startswith("-") else ascii_int(number, "integer")


def _frame_label(instances: Any, width: int, all_targets: bool) -> tuple[str | None, np.ndarray]:
    """The binary label row of one frame, or what is wrong with it."""
    row = np.zeros(width, np.uint8)
    if not isinstance(instances, list):
        return f"expected a list of instances, found {type(instances).__name__}", row
    for number, instance in enumerate(instances):
        if not isinstance(instance, list) or len(instance) != INSTANCE_LENGTH:
            found = len(instance) if isinstance(instance, list) else type(instance).__name__
            return f"instance {number}: expected {INSTANCE_LENGTH} numbers, found {found}", row
        offset = 0
        for field, (position, classes) in FIELDS.items():
            value = instance[position]
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value)
                    or not -1 <= value < classes):
                return f"instance {number}: {field} must be -1 or an integer in 0-{classes - 1}, found {value!r}", row
            if value >= 0 and (field == "IVT" or all_targets):
                row[offset + int(value)] = 1
            offset += classes if (field == "IVT" or all_targets) else 0
    return None, row


def _instances(rng: np.random.Generator, maps: np.ndarray, triplets: np.ndarray, empty: bool) -> list[list[float]]:
    """JSON instances of ``triplets`` (one repeated now and then); none, as one all -1 instance, if ``empty``
    comes up."""
    phase = int(rng.integers(0, 7))
    if empty and rng.random() < 0.2:
        return [[-1] * (INSTANCE_LENGTH - 1) + [phase]]
    repeated = list(triplets) + ([triplets[0]] if rng.random() < 0.3 else [])
    instances = []
    for ivt in repeated:
        _, i, v, t, *_ = maps[ivt].tolist()
        box = np.round(rng.uniform(0, 1, 4), 3).tolist()
        instances.append([int(ivt), i, 1.0, *box, v, t, 1.0, *box, phase])
    return instances
