"""What CholecT45 and CholecT50 share: the triplet vocabulary and table, official video splits, options,
the triplet metrics, look-alike helpers and the plugins' base class.

The splits follow docs/protocols.md section 2. Cross-validation fold k tests on fold k; its training list is the
other folds concatenated in fold order, of which the last five videos are held out for validation (the
official loader's rule). CholecT50 adds one video to each fold.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.api import (ConfigError, DataError, Dataset, FrameIndex, ImageFrames, Split, VideoFrames,
                         content_fingerprint, data_root, root_unavailable)
from harness.metrics.triplet import COMPONENTS as METRIC_COMPONENTS
from harness.metrics.triplet import triplet_video_ap
from plugins.datasets.parsing import plural

NUM_TRIPLETS = 100
INSTRUMENTS = ("grasper", "bipolar", "hook", "scissors", "clipper", "irrigator")
VERBS = ("grasp", "retract", "dissect", "coagulate", "clip", "cut", "aspirate", "irrigate", "pack", "null_verb")
TARGETS = ("gallbladder", "cystic_plate", "cystic_duct", "cystic_artery", "cystic_pedicle", "blood_vessel",
           "fluid", "abdominal_wall_cavity", "liver", "adhesion", "omentum", "peritoneum", "gut", "specimen_bag",
           "null_target")
COMPONENTS = {"instrument": INSTRUMENTS, "verb": VERBS, "target": TARGETS}
FOLDS = {
    1: (79, 2, 51, 6, 25, 14, 66, 23, 50),
    2: (80, 32, 5, 15, 40, 47, 26, 48, 70),
    3: (31, 57, 36, 18, 52, 68, 10, 8, 73),
    4: (42, 29, 60, 27, 65, 75, 22, 49, 12),
    5: (78, 43, 62, 35, 74, 1, 56, 4, 13),
}
T50_EXTRA = {1: 111, 2: 96, 3: 103, 4: 110, 5: 92}
"""The video CholecT50 adds to each CholecT45 fold."""
T45_VIDEOS = tuple(sorted(v for fold in FOLDS.values() for v in fold))
T50_VIDEOS = tuple(sorted(T45_VIDEOS + tuple(T50_EXTRA.values())))
CHALLENGE_VAL = (5, 18, 36, 65, 74)
CHALLENGE_TEST = (92, 96, 103, 110, 111)
RDV_VAL = (8, 12, 29, 50, 78)
RDV_TEST = (6, 51, 10, 73, 14, 74, 32, 80, 42, 111)
VAL_VIDEOS = 5
TARGET_CHOICES = ("triplet", "all")
ALL_WIDTH = NUM_TRIPLETS + sum(len(names) for names in COMPONENTS.values())

log = logging.getLogger("sdbench")


def triplet_maps() -> np.ndarray:
    """The ``(100, 6)`` table ``IVT, I, V, T, IV, IT`` of ivtmetrics' ``maps.txt``."""
    return np.loadtxt(maps_file(), delimiter=",", comments="#", dtype=np.int64)


@functools.cache
def maps_file() -> Path:
    """ivtmetrics' ``maps.txt``, located without importing ivtmetrics (whose import pulls in scikit-learn)."""
    spec = importlib.util.find_spec("ivtmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the triplet table maps.txt ships with ivtmetrics, which is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "maps.txt"


def video_name(number: int) -> str:
    return f"VID{number:02d}"


def frame_png(frame: int) -> str:
    """The image file name of a frame: its 0-based index at 1 fps, zero-padded to six digits."""
    return f"{frame:06d}.png"


def frame_coverage(video: str, label_file: Path, frame_dir: Path, frame_ids: np.ndarray,
                   count_unlabelled: bool = True) -> tuple[str | None, bool]:
    """What differs between the labelled frames of ``video`` and the PNGs in ``frame_dir``, as one message
    with counts and the first file of each kind (None when they agree), and whether a labelled frame has no
    image. PNGs without a label are left out of the count unless ``count_unlabelled`` (a label file with
    problems leaves its faulty rows out, whose images would be counted wrongly)."""
    present = {name for name in os.listdir(frame_dir) if name.endswith(".png")} if frame_dir.is_dir() else set()
    expected = [frame_png(frame) for frame in frame_ids.tolist()]
    missing = [name for name in expected if name not in present]
    unlabelled = sorted(present - set(expected)) if count_unlabelled else []
    parts = []
    if missing:
        parts.append(f"{plural(len(missing), 'labelled frame')} of {label_file} without an image file in {frame_dir} "
                     f"(first: {missing[0]})")
    if unlabelled:
        parts.append(f"{plural(len(unlabelled), 'image file')} without a label in {label_file} "
                     f"(first: {unlabelled[0]}; index() leaves them out)")
    return (f"video {video}: {'; '.join(parts)}" if parts else None), bool(missing)


def image_frames(video: str, label_file: Path, frame_dir: Path, frame_ids: np.ndarray) -> ImageFrames:
    """The PNG of every labelled frame; a :class:`DataError` when one is missing, a warning for PNGs without
    a label (they are left out)."""
    message, missing = frame_coverage(video, label_file, frame_dir, frame_ids)
    if missing:
        raise DataError(message)
    if message:
        log.warning("%s", message)
    return ImageFrames(tuple(str(frame_dir / frame_png(frame)) for frame in frame_ids.tolist()))


def _names(numbers: Iterable[int]) -> tuple[str, ...]:
    return tuple(video_name(n) for n in numbers)


def cv_splits(folds: dict[int, tuple[int, ...]], chosen: Sequence[int]) -> list[Split]:
    """Split ``fold<k>`` per chosen fold: train + val = the other folds in fold order, val = its last five."""
    splits = []
    for k in chosen:
        rest = [v for other, videos in folds.items() if other != k for v in videos]
        splits.append(Split(f"fold{k}", train=_names(rest[:-VAL_VIDEOS]), val=_names(rest[-VAL_VIDEOS:]),
                            test=_names(folds[k])))
    return splits


def challenge_split() -> Split:
    """CholecTriplet challenge: train on CholecT45 minus the validation videos, test on five CholecT50 videos."""
    train = [v for v in T45_VIDEOS if v not in CHALLENGE_VAL]
    return Split("challenge", train=_names(train), val=_names(CHALLENGE_VAL), test=_names(CHALLENGE_TEST))


def rdv_split() -> Split:
    """The Rendezvous paper's split of CholecT50."""
    train = [v for v in T50_VIDEOS if v not in RDV_VAL + RDV_TEST]
    return Split("rdv", train=_names(train), val=_names(RDV_VAL), test=_names(RDV_TEST))


@dataclass(frozen=True)
class Options:
    root: Path | None
    protocol: str
    folds: tuple[int, ...]
    targets: str
    raw: Mapping[str, Any]


def parse_options(name: str, options: Mapping[str, Any] | None, env_var: str, protocols: Sequence[str]) -> Options:
    """Validate ``dataset_options.<name>``: root, protocol, folds (cv only), targets."""
    raw = dict(options or {})
    unknown = sorted(set(raw) - {"root", "protocol", "folds", "targets"})
    if unknown:
        raise ConfigError(f"dataset {name}: unknown option(s) {unknown}; known: root, protocol, folds, targets")
    protocol = raw.get("protocol", "cv")
    if protocol not in protocols:
        raise ConfigError(f"dataset {name}: protocol must be one of {', '.join(protocols)}, got {protocol!r}")
    targets = raw.get("targets", "triplet")
    if targets not in TARGET_CHOICES:
        raise ConfigError(f"dataset {name}: targets must be one of {', '.join(TARGET_CHOICES)}, got {targets!r}")
    return Options(data_root(raw, env_var), protocol, _parse_folds(name, raw.get("folds"), protocol), targets, raw)


def _parse_folds(name: str, folds: Any, protocol: str) -> tuple[int, ...]:
    if folds is None:
        return tuple(FOLDS)
    if protocol != "cv":
        raise ConfigError(f"dataset {name}: option folds applies to protocol cv only, not {protocol!r}")
    if not isinstance(folds, (list, tuple)) or not folds or not all(
            isinstance(k, int) and not isinstance(k, bool) and k in FOLDS for k in folds):
        raise ConfigError(f"dataset {name}: folds must be a non-empty list of fold numbers 1-5, got {folds!r}")
    return tuple(sorted(set(folds)))


def evaluate_triplets(labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray,
                      ignore_null: bool) -> dict[str, float]:
    """Video-wise ``mAP_<component>`` for i, v, t, iv, it, ivt from the first 100 (triplet) columns."""
    maps = triplet_maps()
    y, s = np.asarray(labels)[:, :NUM_TRIPLETS], np.asarray(probs)[:, :NUM_TRIPLETS]
    return {f"mAP_{component}": float(triplet_video_ap(y, s, video_ids, maps, component, ignore_null)["mAP"])
            for component in METRIC_COMPONENTS}


def triplet_names() -> tuple[str, ...]:
    """``instrument,verb,target`` of each triplet ID, from the triplet table."""
    return tuple(f"{INSTRUMENTS[i]},{VERBS[v]},{TARGETS[t]}" for _, i, v, t, *_ in triplet_maps())


def component_names() -> tuple[str, ...]:
    """Names of the 31 component columns that follow the triplets when ``targets: all``."""
    return tuple(f"{component}:{name}" for component, names in COMPONENTS.items() for name in names)


def random_triplet_labels(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """``(num_frames, 100)`` uint8 with one to three positives per frame, from twenty triplet IDs."""
    pool = rng.permutation(NUM_TRIPLETS)[:20]
    labels = np.zeros((num_frames, NUM_TRIPLETS), dtype=np.uint8)
    for row in labels:
        row[rng.choice(pool, size=int(rng.integers(1, 4)), replace=False)] = 1
    return labels


def random_png(path: Path, rng: np.random.Generator) -> None:
    """A 16x16 RGB PNG of noise."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)


class CholecTriplets(Dataset):
    """The common part of the CholecT45 and CholecT50 plugins; subclasses read their layout.

    Options: ``root``, ``protocol``, ``folds`` (cv only), ``targets`` (``triplet``: 100 columns; ``all``:
    100 triplet + 6 instrument + 10 verb + 15 target columns). Metrics use the triplet columns only.
    """

    task = "multilabel"
    primary_metric = "mAP_ivt"
    label_folder: str
    """The folder whose absence means the root does not hold this layout."""
    protocols: dict[str, Callable[[Sequence[int]], list[Split]]]
    dataset_videos: tuple[int, ...]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = parse_options(self.name, options, self.root_env or "", tuple(self.protocols))
        self.root = self.options.root
        self._splits = self.protocols[self.options.protocol](self.options.folds)
        outside = sorted({v for s in self._splits for v in s.train + s.val + s.test}
                         - set(_names(self.dataset_videos)))
        if outside:
            raise ConfigError(f"dataset {self.name}: protocol {self.options.protocol!r} uses videos "
                              f"{' '.join(outside)}, which are not part of {self.name}; use cholect50 for it")

    @property
    def all_targets(self) -> bool:
        return self.options.targets == "all"

    def availability(self) -> str | None:
        reason = root_unavailable(self.name, self.root, self.root_env)
        if reason is None and not (self.root / self.label_folder).is_dir():
            reason = (f"no {self.label_folder}/ folder under {self.root}: it does not hold the official "
                      f"{self.name} layout")
        return reason

    def splits(self) -> list[Split]:
        return list(self._splits)

    def split_videos(self) -> dict[str, str]:
        """Every video the splits use, with its first role (``fold1 test``), in sorted order."""
        roles: dict[str, str] = {}
        for split in self._splits:
            for part in ("train", "val", "test"):
                for video in getattr(split, part):
                    roles.setdefault(video, f"{split.name} {part}")
        return dict(sorted(roles.items()))

    def class_names(self) -> tuple[str, ...]:
        return triplet_names() + (component_names() if self.all_targets else ())

    def index(self) -> FrameIndex:
        videos = {video: self.read_video(video) for video in self.split_videos()}
        return FrameIndex(self.name, self.task, self.class_names(), videos)

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Video-wise mAP of every component (ivtmetrics protocol); the challenge leaves out null triplets."""
        return evaluate_triplets(labels, probs, video_ids, ignore_null=self.options.protocol == "challenge")

    def fingerprint(self) -> str:
        """The bytes of every label file the options read, the name and size of every PNG in the frame folder
        of each of the splits' videos (``<folder>/<video>/*.png`` in either layout), and ``targets``; see
        :mod:`harness.data.fingerprint`."""
        options = {"targets": self.options.targets}
        if self.availability() is not None:
            return content_fingerprint(self.name, Path(), [], [], options)
        images = [path for video in self.split_videos() for path in self.root.glob(f"*/{video}/*.png")]
        return content_fingerprint(self.name, self.root, self.label_files(), images, options)

    def check(self) -> list[str]:
        reason = self.availability()
        if reason:
            return [reason]
        problems = []
        try:
            self.class_names()
        except DataError as exc:
            problems.append(str(exc))
        for video, role in self.split_videos().items():
            path = self.label_path(video)
            if not path.exists():
                problems.append(f"{video} ({role}) is absent: expected {path}, found no such file")
        for path in sorted(self.label_files()):
            problems += self.check_label_file(path)
        return problems

    @abstractmethod
    def label_path(self, video: str) -> Path:
        """The main label file of ``video``."""

    @abstractmethod
    def label_files(self) -> list[Path]:
        """Every label file under the root that this dataset's options read."""

    @abstractmethod
    def read_video(self, video: str) -> VideoFrames:
        """Frames and labels of one video; raises DataError on the first problem."""

    @abstractmethod
    def check_label_file(self, path: Path) -> list[str]:
        """Every problem of one label file and of the frames it lists."""
