"""``noisy-digits``: real images with synthetic label noise, made offline (a third-party sdbench dataset).

The images are scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``: 1,797 real
8x8 scans of digits by 43 writers, 16 grey levels, shipped inside the scikit-learn wheel: nothing is
downloaded). They are generated on first use, deterministically, into ``$SDBENCH_HOME/noisy-digits/<kind>-<noise>``
(or ``options["root"]``) as "videos" of PNG frames and read back from there::

    videos/digits01/0000.png ...     32x32 RGB: the 8x8 scan upscaled bilinearly (PIL), grey in all 3 channels
    labels/digits01.csv              header "frame,label,clean_label,digit_index", one line per frame
    info.json                        generator, options, pair map, splits and the measured noise rates
    COMPLETE                         completion marker holding the fingerprint (written last)

``label`` is the annotation the harness trains and scores on, ``clean_label`` the true digit and
``digit_index`` the row of ``load_digits()`` the frame shows. Generation writes into a temporary directory
and renames it into place after the marker; a directory without the current marker is regenerated.

**Videos and splits.** The images are dealt out to 20 videos (``digits01``-``digits20``) so that every video
holds the same number of each digit (within one): 17 videos of 90 frames and 3 of 89, in a shuffled order.
One split by video: ``digits01``-``digits11`` train (990 frames), ``digits12``-``digits14`` validation
(270 frames, from the training side), ``digits15``-``digits20`` test (537 frames). Which image goes where
depends only on the generator version, never on the options.

**Label noise** (train and validation only; the test labels are the true digits, as in re-annotated
benchmarks). In each of the two parts and for each digit, exactly ``round(noise * n)`` of its ``n`` frames
are flipped, so the measured rate is the option's to within half a frame per digit. The flipped frames are
the first of a random order drawn from their own stream, independent of the rate: a lower rate flips a
subset of the frames a higher one flips, and both kinds flip the same frames.

- ``symmetric`` (default): the label becomes a uniformly drawn *other* digit (never the true one).
- ``pairwise`` (alias ``asymmetric``): the label becomes the digit's fixed look-alike, the cycle
  0→6→5→3→8→9→4→1→7→2→0 (:data:`PAIR`), as in pair-flip noise: each digit is confused with one other,
  never the other way round.

Options (``dataset_options.noisy-digits``): ``noise`` (rate, default 0.4; below 0.9 for ``symmetric`` and
0.5 for ``pairwise``, beyond which the true digit is no longer the most frequent label of its images),
``noise_kind`` (default ``symmetric``) and ``root``. Metrics: ``accuracy`` (primary: frame accuracy over
the test frames) and ``macro_f1`` (mean F1 over the digits that occur in the labels or the predictions).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from harness.api import (ConfigError, DataError, Dataset, DatasetSpec, FrameIndex, ImageFrames, Split, VideoFrames,
                         generate_directory, generated_directory_is_current, hookimpl, sdbench_home)

if TYPE_CHECKING:  # PIL is imported only to write frames
    import PIL.Image

NAME = "noisy-digits"
GENERATOR_VERSION = 1
"""Bump whenever generated pixels or labels change: it is part of the fingerprint."""

MARKER = "COMPLETE"
CLASSES = tuple(str(d) for d in range(10))
NUM_VIDEOS = 20
TRAIN_VIDEOS, VAL_VIDEOS, TEST_VIDEOS = 11, 3, 6
IMAGE_SIZE = 32
HEADER = ("frame", "label", "clean_label", "digit_index")
KINDS = ("symmetric", "pairwise")
ALIASES = {"asymmetric": "pairwise"}
DEFAULTS = {"noise": 0.4, "noise_kind": "symmetric"}
MAX_NOISE = {"symmetric": (len(CLASSES) - 1) / len(CLASSES), "pairwise": 0.5}
_CYCLE = (0, 6, 5, 3, 8, 9, 4, 1, 7, 2)
PAIR = {_CYCLE[i]: _CYCLE[(i + 1) % len(_CYCLE)] for i in range(len(_CYCLE))}
"""``pairwise`` noise: digit d is mislabelled as ``PAIR[d]`` (a fixed cycle of look-alike digits)."""
_PARTS = {"train": 0, "val": 1}
_MISSING_SKLEARN = ("scikit-learn is not installed: noisy-digits makes its images from "
                    "sklearn.datasets.load_digits (pip install scikit-learn)")


@hookimpl
def sdbench_datasets() -> list[DatasetSpec]:
    return [DatasetSpec(NAME, "real handwritten digits (scikit-learn, 1,797 scans) in 20 videos; noisy "
                              "train/val labels", NoisyDigits)]


def sklearn_missing() -> str | None:
    """None when scikit-learn can be imported, else why noisy-digits cannot generate its data."""
    return None if importlib.util.find_spec("sklearn") is not None else _MISSING_SKLEARN


def videos() -> list[str]:
    return [f"digits{number:02d}" for number in range(1, NUM_VIDEOS + 1)]


def default_split() -> Split:
    names = videos()
    return Split("default", train=tuple(names[:TRAIN_VIDEOS]),
                 val=tuple(names[TRAIN_VIDEOS:TRAIN_VIDEOS + VAL_VIDEOS]),
                 test=tuple(names[TRAIN_VIDEOS + VAL_VIDEOS:]))


def parse_options(options: Mapping[str, Any] | None) -> tuple[float, str, Any]:
    """``(noise, noise_kind, root)`` from the dataset options; a :class:`ConfigError` naming the option,
    what was expected and what was found."""
    options = dict(options or {})
    known = ("noise", "noise_kind", "root")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"dataset {NAME}: unknown option(s) {unknown}; known: {', '.join(known)}")
    kind = options.get("noise_kind", DEFAULTS["noise_kind"])
    kind = ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in KINDS:
        raise ConfigError(f"dataset {NAME}: option noise_kind must be one of {', '.join(KINDS)} "
                          f"(or {', '.join(ALIASES)}), got {kind!r}")
    noise = options.get("noise", DEFAULTS["noise"])
    limit = MAX_NOISE[kind]
    if isinstance(noise, bool) or not isinstance(noise, Real) or not 0 <= noise < limit:
        raise ConfigError(f"dataset {NAME}: option noise must be a number in [0, {limit:g}) for noise_kind {kind} "
                          f"(at {limit:g} or more the true digit is no longer the most frequent label), "
                          f"got {noise!r}")
    root = options.get("root")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ConfigError(f"dataset {NAME}: option root must be a path, got {root!r}")
    return float(noise), kind, root


class NoisyDigits(Dataset):
    """Real digit scans, one split by video, noisy train/val labels and clean test labels (see the module)."""

    name = NAME
    task = "multiclass"
    primary_metric = "accuracy"

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.noise, self.noise_kind, root = parse_options(options)
        self.root = Path(root).expanduser() if root else sdbench_home() / NAME / f"{self.noise_kind}-{self.noise:g}"
        self._missing = sklearn_missing()

    # -- what the harness asks ----------------------------------------------------------------------

    def availability(self) -> str | None:
        """None when scikit-learn is importable (or the data is already generated), else why not."""
        return None if self._missing is None or self._complete() else self._missing

    def fingerprint(self) -> str:
        key = {"dataset": NAME, "generator": GENERATOR_VERSION, "noise": self.noise, "noise_kind": self.noise_kind,
               "image_size": IMAGE_SIZE}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def splits(self) -> list[Split]:
        return [default_split()]

    def index(self) -> FrameIndex:
        self.prepare()
        return FrameIndex(NAME, self.task, CLASSES, {video: self._read(video) for video in videos()})

    def clean_labels(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """The true digits of the frames of ``names``, in the order of :meth:`FrameIndex.labels`."""
        self.prepare()
        return np.concatenate([read_labels(self.root / "labels" / f"{v}.csv")["clean_label"] for v in names])

    def evaluate(self, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict[str, float]:
        """Frame accuracy (primary) and macro-F1 of the most probable digit; fractions in [0, 1]."""
        return frame_scores(np.asarray(labels), np.asarray(probs).argmax(axis=1))

    def check(self) -> list[str]:
        """Every problem in the generated files: label file, line and what was expected; missing frames."""
        try:
            self.prepare()
        except DataError as exc:
            return [str(exc)]
        problems = []
        for video in videos():
            try:
                frames = self._read(video)
            except DataError as exc:
                problems.append(str(exc))
                continue
            problems += [f"video {video}: frame image {path} is missing"
                         for path in frames.source.paths if not Path(path).is_file()]
        return problems

    # -- generation -----------------------------------------------------------------------------------

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """The data itself is its own look-alike: generate it (default options) into ``directory``."""
        cls({"root": directory}).prepare()

    def prepare(self) -> None:
        if self._complete():
            return
        if self._missing is not None:
            raise DataError(f"dataset {NAME} cannot generate its data in {self.root}: {self._missing}")
        generate_directory(self.root, self.fingerprint(),
                           lambda staging: generate(staging, self.noise, self.noise_kind), MARKER)

    def _complete(self) -> bool:
        return generated_directory_is_current(self.root, self.fingerprint(), MARKER)

    def _read(self, video: str) -> VideoFrames:
        columns = read_labels(self.root / "labels" / f"{video}.csv")
        frames = columns["frame"]
        paths = tuple(str(self.root / "videos" / video / f"{frame:04d}.png") for frame in frames)
        return VideoFrames(video, frames, columns["label"], ImageFrames(paths))


# --- reading and writing --------------------------------------------------------------------------------

def read_labels(path: Path) -> dict[str, np.ndarray]:
    """The int64 columns of one label file; a :class:`DataError` naming the file, line, expected and found."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"label file {path} is missing") from None
    rows = list(csv.reader(lines))
    if not rows or tuple(rows[0]) != HEADER:
        raise DataError(f"{path}, line 1: expected the header {','.join(HEADER)}, "
                        f"found {','.join(rows[0]) if rows else 'an empty file'}")
    values = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            parsed = [int(value) for value in row]
        except ValueError:
            parsed = []
        if len(parsed) != len(HEADER) or not all(0 <= parsed[i] < len(CLASSES) for i in (1, 2)) \
                or parsed[0] < 0 or parsed[3] < 0:
            raise DataError(f"{path}, line {number}: expected {len(HEADER)} integers (frame >= 0, label and "
                            f"clean_label in 0-9, digit_index >= 0), found {','.join(row)!r}")
        values.append(parsed)
    if not values:
        raise DataError(f"{path}: no frames after the header")
    table = np.array(values, dtype=np.int64)
    if np.any(np.diff(table[:, 0]) <= 0):
        raise DataError(f"{path}: frame numbers must increase line by line")
    return {name: table[:, i] for i, name in enumerate(HEADER)}


def deal(targets: np.ndarray) -> list[np.ndarray]:
    """The ``load_digits`` rows of each video: every digit's images spread evenly, each video shuffled."""
    rng = np.random.default_rng([GENERATOR_VERSION, 1797])
    by_class = np.concatenate([rng.permutation(np.flatnonzero(targets == c)) for c in range(len(CLASSES))])
    return [rng.permutation(by_class[v::NUM_VIDEOS]) for v in range(NUM_VIDEOS)]


def noisy_labels(clean: np.ndarray, part: str, noise: float, kind: str) -> np.ndarray:
    """``clean`` labels of one part (train or val) with exactly ``round(noise * n)`` of each digit's ``n``
    frames flipped. Which frames flip and where a symmetric flip goes come from their own random streams,
    drawn in full whatever the rate and kind (lower rates flip subsets of higher ones)."""
    order_rng = np.random.default_rng([GENERATOR_VERSION, 2, _PARTS[part]])
    other_rng = np.random.default_rng([GENERATOR_VERSION, 3, _PARTS[part]])
    labels = clean.copy()
    for digit in range(len(CLASSES)):
        members = np.flatnonzero(clean == digit)
        order = members[order_rng.permutation(len(members))]
        others = (digit + other_rng.integers(1, len(CLASSES), size=len(members))) % len(CLASSES)
        flipped = int(np.floor(noise * len(members) + 0.5))
        labels[order[:flipped]] = others[:flipped] if kind == "symmetric" else PAIR[digit]
    return labels


def frame_pixels(scan: np.ndarray) -> "PIL.Image.Image":
    """One 8x8 scan (values 0-16, ink high) as a ``IMAGE_SIZE``-square RGB PIL image, upscaled bilinearly."""
    from PIL import Image

    grey = Image.fromarray(np.rint(np.asarray(scan, dtype=np.float64) * (255 / 16)).astype(np.uint8), mode="L")
    return grey.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR).convert("RGB")


def generate(root: Path, noise: float, kind: str) -> None:
    """Write the whole dataset under ``root`` (the layout of the module docstring)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    targets = np.asarray(digits.target, dtype=np.int64)
    dealt = dict(zip(videos(), deal(targets)))
    split = default_split()
    labels = {video: targets[rows] for video, rows in dealt.items()}
    measured = {}
    for part in ("train", "val"):
        members = getattr(split, part)
        clean = np.concatenate([labels[v] for v in members])
        noisy = noisy_labels(clean, part, noise, kind)
        measured[part] = float(np.mean(noisy != clean))
        for video, chunk in zip(members, np.split(noisy, np.cumsum([len(labels[v]) for v in members])[:-1])):
            labels[video] = chunk
    (root / "labels").mkdir(parents=True)
    for video, rows in dealt.items():
        folder = root / "videos" / video
        folder.mkdir(parents=True)
        for frame, row in enumerate(rows):
            frame_pixels(digits.images[row]).save(folder / f"{frame:04d}.png")
        with open(root / "labels" / f"{video}.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            writer.writerows((frame, int(label), int(targets[row]), int(row))
                             for frame, (label, row) in enumerate(zip(labels[video], rows)))
    info = {"dataset": NAME, "generator": GENERATOR_VERSION, "source": "sklearn.datasets.load_digits",
            "image_size": IMAGE_SIZE, "resize": "bilinear (PIL), grey replicated to RGB", "noise": noise,
            "noise_kind": kind, "pair": {str(k): v for k, v in sorted(PAIR.items())} if kind == "pairwise" else None,
            "measured_noise": measured,
            "splits": {part: list(getattr(split, part)) for part in ("train", "val", "test")}}
    (root / "info.json").write_text(json.dumps(info, indent=2) + "\n")


# --- metrics --------------------------------------------------------------------------------------------

def frame_scores(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``accuracy`` over all frames and ``macro_f1`` over the classes in ``labels`` or ``predicted``."""
    labels, predicted = labels.astype(np.int64), predicted.astype(np.int64)
    f1 = []
    for c in np.union1d(labels, predicted):
        tp = np.sum((predicted == c) & (labels == c))
        denominator = np.sum(predicted == c) + np.sum(labels == c)
        f1.append(2 * tp / denominator if denominator else 0.0)
    return {"accuracy": float(np.mean(labels == predicted)) if len(labels) else 0.0,
            "macro_f1": float(np.mean(f1)) if f1 else 0.0}
