"""Conformance tests for teacher strategies: what every strategy must do, checked on synthetic histories.

A strategy package tests itself by subclassing :class:`StrategyConformance` in one of its test modules::

    from harness.conformance import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my-strategy"      # the name its StrategySpec registers
        params = {"k": 2}                  # strategy_params for the factory (optional)

pytest then runs, for multi-label and multi-class histories with one and with three teacher seeds: the
strategy is discoverable through the plugin registry; its selection refers to existing seeds and epochs
with valid weights; its soft labels have the shape of the training probabilities, dtype float32, values in
[0, 1] and (multi-class) rows summing to 1; it is deterministic; it does not modify the histories. A failure
says which strategy, which check and what was wrong.

Window rules have their kit too: subclass :class:`WindowRuleConformance` and set ``rule_name`` (and
``params``); on multi-label and multi-class histories of 8, 2 and 1 epochs, constant histories and one
without validation frames, it checks that the rule is discoverable, returns a sorted non-empty subset of the
history's epochs, is deterministic, leaves the history untouched and describes itself.

Datasets have theirs: subclass :class:`DatasetConformance` and set ``dataset_name`` (and ``options``,
``label_file``); it synthesizes the dataset's look-alike into a temporary directory and checks that the
dataset is discoverable, that ``check()`` finds no problem in it, that the splits are disjoint, non-empty and
name only indexed videos, that labels are aligned with frames and have the task's shape, dtype and class
count, that ``evaluate`` returns its primary metric, every metric in [0, 1], and scores perfect predictions
at least as high as random ones, that the fingerprint survives a copy elsewhere and follows the label file,
and that the frame store builds frames from the index (see ``docs/datasets.md``).

This module is also a pytest plugin (entry point ``pytest11``): it provides the fixture
``sdbench_teachers``, a factory of the same synthetic histories for a package's own tests.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pytest

from harness.data.dataset import Dataset, FrameIndex, ImageFrames, Split, VideoFileFrames, VideoFrames
from harness.errors import DataError
from harness.history import EpochRecord, HistoryWriter, TeacherHistory
from harness.strategy import Selection, Strategy, Teachers, soft_labels
from harness.windows import WindowRule, window_rule

SCENARIOS: dict[str, tuple[str, tuple[int, ...]]] = {
    "multilabel-1-seed": ("multilabel", (0,)),
    "multilabel-3-seeds": ("multilabel", (0, 1, 2)),
    "multiclass-1-seed": ("multiclass", (0,)),
    "multiclass-3-seeds": ("multiclass", (0, 1, 2)),
}
EPOCHS, TRAIN_FRAMES, VAL_FRAMES, CLASSES = 8, 12, 8, 4


class ConformanceError(AssertionError):
    """A strategy broke a rule every strategy must follow; the message says which and how."""


def _labels(rng: np.random.Generator, frames: int, task: str) -> np.ndarray:
    if task == "multiclass":
        return np.arange(frames) % CLASSES
    labels = (rng.random((frames, CLASSES)) < 0.4).astype(np.uint8)
    labels[np.arange(frames), np.arange(frames) % CLASSES] = 1  # every frame and class has a positive
    return labels


def _probs(rng: np.random.Generator, labels: np.ndarray, task: str, strength: float) -> np.ndarray:
    """Probabilities whose agreement with ``labels`` grows with ``strength``, plus noise."""
    if task == "multiclass":
        logits = rng.normal(0.0, 1.0, (len(labels), CLASSES))
        logits[np.arange(len(labels)), labels] += strength
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    logits = rng.normal(0.0, 1.0, labels.shape) + strength * (2.0 * labels - 1.0)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def synthetic_teachers(directory: Path, task: str = "multilabel", seeds: Sequence[int] = (0,),
                       epochs: int = EPOCHS) -> dict[int, TeacherHistory]:
    """Teacher histories that look like training: the fit to the labels grows epoch after epoch, the
    validation score rises and falls again (its peak differs per seed). All seeds share the training and
    validation frames, as the teachers of one cell do. Deterministic."""
    frames_rng = np.random.default_rng(12345)
    train_labels, val_labels = _labels(frames_rng, TRAIN_FRAMES, task), _labels(frames_rng, VAL_FRAMES, task)
    teachers = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        writer = HistoryWriter(Path(directory) / f"seed-{seed}", seed, task, "score", train_labels, val_labels)
        for epoch in range(1, epochs + 1):
            strength = 4.0 * epoch / epochs
            score = 0.5 + 0.3 * math.sin(math.pi * epoch / (epochs + 1 + seed))
            writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"score": score}),
                             _probs(rng, train_labels, task, strength), _probs(rng, val_labels, task, strength))
        teachers[seed] = TeacherHistory(Path(directory) / f"seed-{seed}")
    return teachers


# -- the checks: plain functions, usable outside pytest -------------------------------------------------


def check_selection(name: str, selection: Any, teachers: Teachers, seed: int) -> None:
    """``selection`` is a Selection of existing checkpoints with finite, non-negative, non-zero weights."""
    where = f"strategy '{name}', student seed {seed}"
    if not isinstance(selection, Selection):
        raise ConformanceError(f"{where}: select() returned {selection!r}, expected a harness.strategy.Selection")
    for checkpoint in selection.checkpoints:
        if checkpoint.seed not in teachers:
            raise ConformanceError(f"{where}: selected checkpoint {checkpoint}, but there is no teacher of seed "
                                   f"{checkpoint.seed} (teacher seeds: {sorted(teachers)})")
        epochs = teachers[checkpoint.seed].epochs
        if checkpoint.epoch not in epochs:
            raise ConformanceError(f"{where}: selected checkpoint {checkpoint}, but teacher seed {checkpoint.seed} "
                                   f"has epochs {epochs}")
    if selection.weights is not None:
        weights = np.asarray(selection.weights, dtype=np.float64)
        if not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
            raise ConformanceError(f"{where}: weights {list(selection.weights)} must be finite, non-negative "
                                   "and not all zero")
    if not math.isfinite(selection.temperature):
        raise ConformanceError(f"{where}: temperature {selection.temperature} must be finite")


def check_soft_labels(name: str, soft: np.ndarray | None, teachers: Teachers, seed: int) -> None:
    """Soft labels (None: hard labels) have the training probabilities' shape, dtype float32 and valid values."""
    if soft is None:
        return
    where = f"strategy '{name}', student seed {seed}"
    history = teachers[seed]
    expected = history.train_probs(history.epochs[0]).shape
    if not isinstance(soft, np.ndarray) or soft.shape != expected:
        raise ConformanceError(f"{where}: soft labels of shape {getattr(soft, 'shape', type(soft))}, expected "
                               f"{expected} (training frames x classes)")
    if soft.dtype != np.float32:
        raise ConformanceError(f"{where}: soft labels of dtype {soft.dtype}, expected float32")
    if not np.isfinite(soft).all() or soft.min() < 0 or soft.max() > 1:
        raise ConformanceError(f"{where}: soft labels must be probabilities in [0, 1], got values in "
                               f"[{np.nanmin(soft):.4g}, {np.nanmax(soft):.4g}] (logits instead of probabilities?)")
    if history.task == "multiclass":
        sums = soft.sum(axis=1, dtype=np.float64)
        if not np.allclose(sums, 1.0, atol=1e-4):
            raise ConformanceError(f"{where}: multi-class soft labels must sum to 1 per frame, got row sums in "
                                   f"[{sums.min():.4g}, {sums.max():.4g}]")


def check_deterministic(name: str, make_strategy: Callable[[], Strategy], teachers: Teachers, seed: int) -> None:
    """The same histories give the same selection and soft labels, from one instance and from a fresh one."""
    strategy = make_strategy()
    results = [soft_labels(s, teachers, seed) for s in (strategy, strategy, make_strategy())]
    (first_selection, first_soft), *others = results
    for selection, soft in others:
        same_soft = (soft is None and first_soft is None) or (
            soft is not None and first_soft is not None and np.array_equal(soft, first_soft))
        if selection != first_selection or not same_soft:
            raise ConformanceError(f"strategy '{name}', student seed {seed}: not deterministic; the same histories "
                                   f"gave {first_selection.describe()!r} and then {selection.describe()!r} "
                                   "(or different soft labels). Seed any randomness from the histories.")


def history_fingerprint(teachers: Teachers) -> dict[str, str]:
    """A digest of every file of every history, by path."""
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest()
            for history in teachers.values() for path in sorted(history.directory.rglob("*")) if path.is_file()}


def check_no_mutation(name: str, strategy: Strategy, teachers: Teachers, seed: int) -> None:
    """Running the strategy leaves the history files and the loaded records as they were."""
    files, records = history_fingerprint(teachers), copy.deepcopy({s: h.records for s, h in teachers.items()})
    soft_labels(strategy, teachers, seed)
    after = history_fingerprint(teachers)
    changed = sorted(path for path in set(files) | set(after) if files.get(path) != after.get(path))
    changed += [f"the records of teacher seed {s}" for s, h in teachers.items() if h.records != records[s]]
    if changed:
        raise ConformanceError(f"strategy '{name}', student seed {seed}: changed the teacher histories, which "
                               f"must stay read-only: {', '.join(changed)}")


# -- window rules ----------------------------------------------------------------------------------------

WINDOW_SCENARIOS: dict[str, tuple[str, str, int]] = {
    f"{task}-{shape}": (task, shape, epochs) for task in ("multilabel", "multiclass")
    for shape, epochs in (("8-epochs", 8), ("2-epochs", 2), ("1-epoch", 1), ("constant", 4), ("no-val", 5))
}
"""Window-rule scenarios: task, shape (``N-epochs`` of :func:`synthetic_teachers`; ``constant``: every epoch
the same loss, score and probabilities; ``no-val``: no validation frames, so NaN validation NLL) and epochs."""


def window_history(directory: Path, task: str, shape: str, epochs: int) -> TeacherHistory:
    """One teacher history of a :data:`WINDOW_SCENARIOS` shape. Deterministic."""
    if shape.endswith(("-epochs", "-epoch")):
        return synthetic_teachers(directory, task, (0,), epochs)[0]
    rng = np.random.default_rng(7)
    train_labels, val_labels = _labels(rng, TRAIN_FRAMES, task), _labels(rng, VAL_FRAMES, task)
    if shape == "no-val":
        val_labels = val_labels[:0]
    writer = HistoryWriter(Path(directory), 0, task, "score", train_labels, val_labels)
    train_probs, val_probs = _probs(rng, train_labels, task, 2.0), _probs(rng, val_labels, task, 2.0)
    for epoch in range(1, epochs + 1):
        if shape == "no-val":
            train_probs = _probs(rng, train_labels, task, 4.0 * epoch / epochs)
        writer.add_epoch(EpochRecord(epoch, 1.0 if shape == "constant" else 1.0 / epoch,
                                     {"score": 0.5 if shape == "constant" else 0.1 * epoch}), train_probs, val_probs)
    return TeacherHistory(Path(directory))


def check_window(name: str, window: Any, history: TeacherHistory) -> None:
    """``window`` is a sorted, non-empty list of distinct epochs of ``history``."""
    where = f"window rule '{name}', teacher seed {history.seed} with epochs {history.epochs}"
    if not isinstance(window, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in window):
        raise ConformanceError(f"{where}: window() returned {window!r}, expected a list of int epochs")
    if not window:
        raise ConformanceError(f"{where}: window() returned no epoch; a window is never empty")
    if window != sorted(set(window)):
        raise ConformanceError(f"{where}: window() returned {window}, expected distinct epochs in increasing order")
    outside = [e for e in window if e not in history.epochs]
    if outside:
        raise ConformanceError(f"{where}: window() returned epochs {outside} that the history does not have")


def check_window_deterministic(name: str, make_rule: Callable[[], Any], history: TeacherHistory) -> None:
    """The same history gives the same window, from one instance and from a fresh one."""
    rule = make_rule()
    first, *others = [r.window(history) for r in (rule, rule, make_rule())]
    for other in others:
        if other != first:
            raise ConformanceError(f"window rule '{name}': not deterministic; the same history gave {first} and "
                                   f"then {other}")


def check_window_no_mutation(name: str, rule: Any, history: TeacherHistory) -> None:
    """Running the rule leaves the history files and the loaded records as they were."""
    files, records = history_fingerprint({0: history}), copy.deepcopy(history.records)
    rule.window(history)
    after = history_fingerprint({0: history})
    changed = sorted(path for path in set(files) | set(after) if files.get(path) != after.get(path))
    changed += ["the records"] if history.records != records else []
    if changed:
        raise ConformanceError(f"window rule '{name}': changed the teacher history, which must stay read-only: "
                               f"{', '.join(changed)}")


def check_window_describes_itself(name: str, rule: Any) -> None:
    """``describe()`` is a non-empty string and ``key()`` a JSON-serialisable mapping with the rule's name."""
    description = rule.describe()
    if not isinstance(description, str) or not description.strip():
        raise ConformanceError(f"window rule '{name}': describe() returned {description!r}, expected a non-empty "
                               "string")
    key = rule.key()
    if not isinstance(key, Mapping) or not isinstance(key.get("name"), str) or not key["name"]:
        raise ConformanceError(f"window rule '{name}': key() returned {key!r}, expected a mapping with the rule's "
                               "'name' (it is part of the soft-label cache key, which must tell rules apart)")
    try:
        json.dumps(key, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"window rule '{name}': key() returned {key!r}, which is not JSON-serialisable "
                               f"(it is part of the soft-label cache key): {exc}") from None


def check_registered(kind: str, name: str, label: str | None = None) -> None:
    """``name`` is registered as a plugin of ``kind``; the error lists what is registered and the plugin problems."""
    from harness.plugins import get_registry

    registry = get_registry()
    if name not in registry.names(kind):
        problems = "; ".join(registry.problems) or "none"
        raise ConformanceError(f"{label or kind} '{name}' is not registered. Is its package installed with an "
                               f"'sdbench' entry point? Registered: {registry.names(kind)}. Plugin problems: {problems}")


# -- datasets --------------------------------------------------------------------------------------------

PARTS = ("train", "val", "test")
FRAME_SIZE = 8
"""The frame size (pixels, square) at which the kit builds frames: small, so any look-alike builds fast."""


def check_splits(name: str, splits: Any, index: FrameIndex) -> None:
    """``splits`` is a non-empty list of Splits with distinct names, each with non-empty, disjoint train, val
    and test parts that name only videos of ``index``."""
    where = f"dataset '{name}'"
    if not isinstance(splits, list) or not splits or not all(isinstance(s, Split) for s in splits):
        raise ConformanceError(f"{where}: splits() returned {splits!r}, expected a non-empty list of "
                               "harness.data.dataset.Split")
    names = [split.name for split in splits]
    if len(set(names)) < len(names):
        raise ConformanceError(f"{where}: splits() returned the split names {names}; each name must be distinct "
                               "(it is part of every job key)")
    for split in splits:
        for part in PARTS:
            members = getattr(split, part)
            if not members:
                raise ConformanceError(f"{where}, split '{split.name}': no {part} videos")
            unknown = [v for v in members if v not in index.videos]
            if unknown:
                raise ConformanceError(f"{where}, split '{split.name}': {part} names videos {unknown[:5]} that "
                                       f"index() does not list (indexed: {_first(index.videos)})")
        for i, a in enumerate(PARTS):
            for b in PARTS[i + 1:]:
                shared = sorted(set(getattr(split, a)) & set(getattr(split, b)))
                if shared:
                    raise ConformanceError(f"{where}, split '{split.name}': videos {shared[:5]} are in both {a} "
                                           f"and {b}; validation comes from the training side, never the test set")


def check_index(name: str, dataset: Dataset, index: Any) -> None:
    """``index`` is the dataset's FrameIndex: its task, non-empty class names, and per video as many frame ids,
    label rows and frames of its source, the labels of the task's shape, dtype and class count."""
    where = f"dataset '{name}'"
    if not isinstance(index, FrameIndex):
        raise ConformanceError(f"{where}: index() returned {index!r}, expected a harness.data.dataset.FrameIndex")
    if index.dataset != dataset.name or index.task != dataset.task or dataset.task not in ("multilabel", "multiclass"):
        raise ConformanceError(f"{where}: index() is of dataset {index.dataset!r}, task {index.task!r}; expected "
                               f"the dataset's name {dataset.name!r} and task {dataset.task!r} (multilabel or "
                               "multiclass)")
    if not index.class_names or not all(isinstance(c, str) and c for c in index.class_names):
        raise ConformanceError(f"{where}: class_names {index.class_names!r}, expected a non-empty tuple of names")
    if not index.videos:
        raise ConformanceError(f"{where}: index() lists no video")
    for key, video in index.videos.items():
        if not isinstance(video, VideoFrames) or video.video != key:
            found = f"the VideoFrames of video {video.video!r}" if isinstance(video, VideoFrames) else repr(video)
            raise ConformanceError(f"{where}: index().videos[{key!r}] is {found}, expected the VideoFrames of "
                                   f"video {key!r}")
        check_video_frames(name, index.task, index.num_classes, video)


def check_video_frames(name: str, task: str, num_classes: int, video: VideoFrames) -> None:
    """One video's frame ids, labels and frame source agree in length, and its labels fit the task."""
    where = f"dataset '{name}', video '{video.video}'"
    frame_ids, labels = np.asarray(video.frame_ids), np.asarray(video.labels)
    if frame_ids.ndim != 1 or not np.issubdtype(frame_ids.dtype, np.integer) or not len(frame_ids):
        raise ConformanceError(f"{where}: frame_ids of shape {frame_ids.shape} and dtype {frame_ids.dtype}, "
                               "expected a non-empty 1-D integer array")
    if len(labels) != len(frame_ids):
        raise ConformanceError(f"{where}: {len(frame_ids)} frame ids but {len(labels)} label rows; row i labels "
                               "frame i")
    if task == "multilabel":
        if labels.shape != (len(frame_ids), num_classes) or labels.dtype != np.uint8 or (labels > 1).any():
            raise ConformanceError(f"{where}: multi-label labels of shape {labels.shape}, dtype {labels.dtype}, "
                                   f"values {np.unique(labels)[:5].tolist()}; expected ({len(frame_ids)}, "
                                   f"{num_classes}) uint8 of 0 and 1")
    elif (labels.shape != (len(frame_ids),) or labels.dtype != np.int64
          or (len(labels) and (labels.min() < 0 or labels.max() >= num_classes))):
        raise ConformanceError(f"{where}: multi-class labels of shape {labels.shape}, dtype {labels.dtype}, "
                               f"values in [{labels.min()}, {labels.max()}]; expected ({len(frame_ids)},) int64 "
                               f"class indices in [0, {num_classes})")
    source = video.source
    if isinstance(source, ImageFrames):
        if len(source.paths) != len(frame_ids):
            raise ConformanceError(f"{where}: {len(frame_ids)} labelled frames but {len(source.paths)} image "
                                   "paths; expected one image per frame")
    elif not isinstance(source, VideoFileFrames) or not (math.isfinite(source.sample_fps) and source.sample_fps > 0):
        raise ConformanceError(f"{where}: frame source {source!r}, expected ImageFrames or VideoFileFrames with a "
                               "positive sample_fps")


def _perfect_and_random_probs(labels: np.ndarray, task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities that match ``labels`` exactly, and uniformly random ones (multi-class rows sum to 1)."""
    rng = np.random.default_rng(0)
    if task == "multilabel":
        return labels.astype(np.float32), rng.random(labels.shape, dtype=np.float32)
    random = rng.random((len(labels), num_classes))
    random /= random.sum(axis=1, keepdims=True)
    return np.eye(num_classes, dtype=np.float32)[labels], random.astype(np.float32)


def check_scores(name: str, dataset: Dataset, index: FrameIndex, videos: Sequence[str]) -> None:
    """``evaluate`` on the frames of ``videos`` returns its primary metric and every metric as a fraction in
    [0, 1], perfect predictions scoring at least as high as random ones on the primary metric."""
    labels, video_ids = index.labels(videos)
    perfect, random = (_scores(name, dataset, labels, probs, video_ids)
                       for probs in _perfect_and_random_probs(labels, index.task, index.num_classes))
    metric = dataset.primary_metric
    if perfect[metric] < random[metric]:
        raise ConformanceError(f"dataset '{name}': evaluate() scores perfect predictions {metric} = "
                               f"{perfect[metric]:.4g}, below random ones ({random[metric]:.4g}); higher must be "
                               "better")


def _scores(name: str, dataset: Dataset, labels: np.ndarray, probs: np.ndarray, video_ids: np.ndarray) -> dict:
    scores = dataset.evaluate(labels, probs, video_ids)
    where = f"dataset '{name}': evaluate()"
    if not isinstance(scores, Mapping) or dataset.primary_metric not in scores:
        raise ConformanceError(f"{where} returned {scores!r}, expected a mapping with the primary metric "
                               f"{dataset.primary_metric!r}")
    bad = {k: v for k, v in scores.items() if isinstance(v, bool) or not isinstance(v, (int, float, np.number))
           or not 0 <= v <= 1}
    if bad:
        raise ConformanceError(f"{where} returned {bad}; every metric must be a number in [0, 1] (a fraction, "
                               "not a percentage, never NaN)")
    return dict(scores)


def check_fingerprint_survives_a_copy(name: str, make_dataset: Callable[[Path], Dataset], root: Path,
                                      copy: Path) -> str:
    """The fingerprint of ``root`` is a non-empty string, the same for a copy at ``copy`` (new modification
    times); returns it."""
    original = make_dataset(root).fingerprint()
    if not isinstance(original, str) or not original:
        raise ConformanceError(f"dataset '{name}': fingerprint() returned {original!r}, expected a non-empty string")
    shutil.copytree(root, copy, copy_function=shutil.copy)
    copied = make_dataset(copy).fingerprint()
    if copied != original:
        raise ConformanceError(f"dataset '{name}': fingerprint() of a copy of the data in another directory is "
                               f"{copied}, not {original}: it must depend on content, never on the root or "
                               "modification times (see harness.data.fingerprint)")
    return original


def check_fingerprint_follows_the_label_file(name: str, make_dataset: Callable[[Path], Dataset], root: Path,
                                             label_file: str) -> None:
    """Changing the bytes of ``label_file`` (relative to ``root``; a newline is appended) changes the fingerprint."""
    path = root / label_file
    if not path.is_file():
        raise ConformanceError(f"dataset '{name}': the declared label_file {label_file!r} is not a file of the "
                               f"look-alike in {root}")
    before = make_dataset(root).fingerprint()
    with open(path, "ab") as handle:
        handle.write(b"\n")
    if make_dataset(root).fingerprint() == before:
        raise ConformanceError(f"dataset '{name}': fingerprint() stayed {before} when the bytes of {label_file} "
                               "changed; it must hash every label file, or stale frames and jobs are reused")


def check_no_problems(name: str, dataset: Dataset) -> None:
    """The dataset is available and ``check()`` returns an empty list."""
    reason = dataset.availability()
    if reason is not None:
        raise ConformanceError(f"dataset '{name}': availability() says {reason!r} for its own look-alike")
    problems = dataset.check()
    if problems != []:
        shown = "; ".join(map(str, problems[:5])) if isinstance(problems, list) else repr(problems)
        raise ConformanceError(f"dataset '{name}': check() on its own look-alike returned {shown}; expected [] "
                               "(a list of problems, empty when there is none)")


def check_frames(name: str, dataset: Dataset, videos: Sequence[VideoFrames], store: Path) -> None:
    """The frame store builds ``videos`` at :data:`FRAME_SIZE`: uint8 ``(frames, size, size, 3)`` each."""
    from harness.data.frames import FrameStore

    try:
        arrays = FrameStore(store).load(dataset.name, dataset.fingerprint(), videos, FRAME_SIZE)
    except DataError as exc:
        raise ConformanceError(f"dataset '{name}': the frame store cannot build frames from the index: {exc}") from exc
    for video, frames in zip(videos, arrays):
        if frames.shape != (len(video), FRAME_SIZE, FRAME_SIZE, 3) or frames.dtype != np.uint8:
            raise ConformanceError(f"dataset '{name}', video '{video.video}': frames of shape {frames.shape}, "
                                   f"expected ({len(video)}, {FRAME_SIZE}, {FRAME_SIZE}, 3)")


def _first(names: Any, count: int = 5) -> str:
    names = list(names)
    return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


# -- the pytest side -----------------------------------------------------------------------------------


class StrategyConformance:
    """Subclass in a test module, set ``strategy_name`` (and ``params``): pytest runs every check."""

    strategy_name: str = ""
    params: Mapping[str, Any] = {}

    def make_strategy(self) -> Strategy:
        from harness.plugins import get_registry

        return get_registry().get("strategy", self.strategy_name).factory(**dict(self.params))

    @pytest.fixture(scope="class", params=list(SCENARIOS))
    @classmethod
    def teachers(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Teachers:
        task, seeds = SCENARIOS[request.param]
        return synthetic_teachers(tmp_path_factory.mktemp(request.param), task, seeds)

    def test_is_discoverable(self) -> None:
        check_registered("strategy", self.strategy_name)
        strategy = self.make_strategy()
        if not isinstance(strategy, Strategy):
            raise ConformanceError(f"strategy '{self.strategy_name}': its factory returned {strategy!r}, expected "
                                   "a harness.strategy.Strategy")

    def test_selects_existing_checkpoints(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)

    def test_soft_labels_are_probabilities(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_soft_labels(self.strategy_name, soft_labels(strategy, teachers, seed)[1], teachers, seed)

    def test_is_deterministic(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_deterministic(self.strategy_name, self.make_strategy, teachers, seed)

    def test_does_not_mutate_histories(self, teachers: Teachers) -> None:
        for seed in teachers:
            check_no_mutation(self.strategy_name, self.make_strategy(), teachers, seed)


class WindowRuleConformance:
    """Subclass in a test module, set ``rule_name`` (and ``params``): pytest runs every window-rule check."""

    rule_name: str = ""
    params: Mapping[str, Any] = {}

    def make_rule(self) -> WindowRule:
        return window_rule({"name": self.rule_name, **dict(self.params)})

    @pytest.fixture(scope="class", params=list(WINDOW_SCENARIOS))
    @classmethod
    def history(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TeacherHistory:
        return window_history(tmp_path_factory.mktemp(request.param), *WINDOW_SCENARIOS[request.param])

    def test_is_discoverable(self) -> None:
        check_registered("window", self.rule_name, "window rule")
        rule = self.make_rule()
        if not isinstance(rule, WindowRule):
            raise ConformanceError(f"window rule '{self.rule_name}': its factory returned {rule!r}, expected a "
                                   "harness.windows.WindowRule")

    def test_describes_itself(self) -> None:
        check_window_describes_itself(self.rule_name, self.make_rule())

    def test_window_is_a_sorted_subset_of_the_epochs(self, history: TeacherHistory) -> None:
        check_window(self.rule_name, self.make_rule().window(history), history)

    def test_is_deterministic(self, history: TeacherHistory) -> None:
        check_window_deterministic(self.rule_name, self.make_rule, history)

    def test_does_not_mutate_the_history(self, history: TeacherHistory) -> None:
        check_window_no_mutation(self.rule_name, self.make_rule(), history)


class DatasetConformance:
    """Subclass in a test module, set ``dataset_name`` (and ``options``, ``label_file``): pytest synthesizes the
    dataset's look-alike once per class into a temporary directory and runs every dataset check on it.

    Override :meth:`synthesize` to write a smaller look-alike than the dataset's own ``synthesize``."""

    dataset_name: str = ""
    options: Mapping[str, Any] = {}
    """Dataset options besides ``root`` (which the kit sets to the look-alike's directory)."""
    label_file: str | None = None
    """A label file of the look-alike, relative to its root, whose bytes the fingerprint must follow; None for a
    dataset whose fingerprint is its generator's version and options (data it generates itself)."""

    @classmethod
    def make_dataset(cls, root: Path) -> Dataset:
        from harness.plugins import get_registry

        return get_registry().get("dataset", cls.dataset_name).factory({**dict(cls.options), "root": str(root)})

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """Write the look-alike into ``directory`` (which does not exist yet): the dataset's ``synthesize``, or
        for a dataset without one its ``prepare`` (a dataset that generates its data under its root)."""
        dataset = cls.make_dataset(directory)
        if type(dataset).synthesize.__func__ is Dataset.synthesize.__func__:
            dataset.prepare()
        else:
            dataset.synthesize(directory)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset_root(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """The look-alike's directory; read-only for the checks (those that change files change a copy)."""
        check_registered("dataset", cls.dataset_name)
        root = tmp_path_factory.mktemp(cls.dataset_name) / "data"
        cls.synthesize(root)
        return root

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, dataset_root: Path) -> Dataset:
        return cls.make_dataset(dataset_root)

    @pytest.fixture(scope="class")
    @classmethod
    def index(cls, dataset: Dataset) -> FrameIndex:
        dataset.prepare()
        return dataset.index()

    def test_is_discoverable(self, tmp_path: Path) -> None:
        check_registered("dataset", self.dataset_name)
        dataset = self.make_dataset(tmp_path)
        if not isinstance(dataset, Dataset) or dataset.name != self.dataset_name:
            raise ConformanceError(f"dataset '{self.dataset_name}': its factory returned {dataset!r}, expected a "
                                   f"harness.data.dataset.Dataset named {self.dataset_name!r}")

    def test_check_finds_no_problem_in_the_look_alike(self, dataset: Dataset) -> None:
        check_no_problems(self.dataset_name, dataset)

    def test_labels_are_aligned_with_frames(self, dataset: Dataset, index: FrameIndex) -> None:
        check_index(self.dataset_name, dataset, index)

    def test_splits_are_disjoint_and_name_indexed_videos(self, dataset: Dataset, index: FrameIndex) -> None:
        check_splits(self.dataset_name, dataset.splits(), index)

    def test_evaluate_scores_perfect_predictions_above_random(self, dataset: Dataset, index: FrameIndex) -> None:
        check_splits(self.dataset_name, dataset.splits(), index)
        check_scores(self.dataset_name, dataset, index, dataset.splits()[0].test)

    def test_fingerprint_survives_a_copy(self, dataset_root: Path, tmp_path: Path) -> None:
        check_fingerprint_survives_a_copy(self.dataset_name, self.make_dataset, dataset_root, tmp_path / "copy")

    def test_fingerprint_follows_the_label_file(self, dataset_root: Path, tmp_path: Path) -> None:
        if self.label_file is None:
            pytest.skip(f"dataset '{self.dataset_name}' declares no label_file: its fingerprint is its generator's")
        copy = Path(shutil.copytree(dataset_root, tmp_path / "copy"))
        check_fingerprint_follows_the_label_file(self.dataset_name, self.make_dataset, copy, self.label_file)

    def test_frame_store_builds_frames(self, dataset: Dataset, index: FrameIndex, tmp_path: Path) -> None:
        """One video of each part of the first split, enough to show that the sources can be decoded."""
        split = dataset.splits()[0]
        videos = [index.videos[getattr(split, part)[0]] for part in PARTS]
        check_frames(self.dataset_name, dataset, videos, tmp_path / "store")


@pytest.fixture
def sdbench_teachers(tmp_path: Path) -> Callable[..., dict[int, TeacherHistory]]:
    """``sdbench_teachers(task="multilabel", seeds=(0,), epochs=8)``: synthetic teacher histories by seed."""
    count = iter(range(1_000_000))

    def make(task: str = "multilabel", seeds: Sequence[int] = (0,), epochs: int = EPOCHS) -> dict[int, TeacherHistory]:
        return synthetic_teachers(tmp_path / f"teachers-{next(count)}", task, seeds, epochs)

    return make
