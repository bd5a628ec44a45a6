"""The per-epoch record of one teacher run, readable with numpy alone.

A teacher run writes, after every epoch, its training loss, its validation metrics and its eval-mode
probabilities on the validation frames and on its own training frames. Strategies read these records and
never need the model again. Layout of a history directory::

    history.json          seed, task, primary metric and one record per finished epoch (with its soft-label
                          diagnostics on the validation frames, see :mod:`harness.metrics.diagnostics`)
    train_labels.npy      hard labels of the training frames, (N,) or (N, C)
    val_labels.npy        hard labels of the validation frames
    probs/train_EEE.npy   float32 (N, C) probabilities on the training frames after epoch EEE (1-based)
    probs/val_EEE.npy     float32 (M, C) probabilities on the validation frames

Every stored loss and probability is finite: the writer refuses others, and the reader refuses a history
that holds others (corrupt, or written by a version that let a diverged teacher through) with a
:class:`~harness.errors.DataError` naming the file, so that no strategy or window rule ever sees NaN.

A student job logs its training losses the same way, in ``history.json`` of its job directory
(:class:`LossLog`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from harness.errors import DataError, DivergedError
from harness.metrics.diagnostics import diagnose, nll, true_label_confidence
from harness.system.atomic import write_json, write_npy

STUDENT_HISTORY = "history.json"
"""The per-epoch training losses of a student, in its job directory (see :class:`LossLog`)."""
_REFUSED = ("the history is corrupt, or was written by a version that stored a diverged teacher; delete the "
            "teacher's job directory to train it again")


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch. ``diagnostics`` is filled by :class:`HistoryWriter`; histories written before it
    existed load with an empty mapping."""

    epoch: int
    train_loss: float
    val_metrics: Mapping[str, float] = field(default_factory=dict)
    diagnostics: Mapping[str, float] = field(default_factory=dict)


class TeacherHistory:
    """Read access to a teacher run's history. Probabilities are memory-mapped on demand. An epoch whose
    training loss is not finite is refused when it is asked for, a probability file holding a non-finite
    value when it is first read."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        meta = json.loads((self.directory / "history.json").read_text())
        self.seed: int = meta["seed"]
        self.task: str = meta["task"]
        self.primary_metric: str = meta["primary_metric"]
        self.records: tuple[EpochRecord, ...] = tuple(EpochRecord(**r) for r in meta["epochs"])
        self._curves: dict[tuple[str, int], float] = {}
        self._finite: set[Path] = set()

    @property
    def epochs(self) -> list[int]:
        """The finished epochs, 1-based and in order."""
        return [r.epoch for r in self.records]

    def record(self, epoch: int) -> EpochRecord:
        for r in self.records:
            if r.epoch == epoch:
                if not math.isfinite(r.train_loss):
                    raise DataError(f"{self.directory / 'history.json'}: the training loss of epoch {epoch} is "
                                    f"{r.train_loss}: {_REFUSED}")
                return r
        raise KeyError(f"teacher seed {self.seed} has no epoch {epoch}; it has epochs {self.epochs}")

    def val_score(self, epoch: int) -> float:
        """The primary validation metric after ``epoch`` (higher is better)."""
        return float(self.record(epoch).val_metrics[self.primary_metric])

    def train_loss(self, epoch: int) -> float:
        return float(self.record(epoch).train_loss)

    def diagnostics(self, epoch: int) -> dict[str, float]:
        """Mean max-probability, mean entropy and calibration error on the validation frames after ``epoch``
        (see :mod:`harness.metrics.diagnostics`); computed from the stored probabilities for older histories."""
        stored = self.record(epoch).diagnostics
        if stored:
            return {name: float(value) for name, value in stored.items()}
        return diagnose(self.val_probs(epoch), self.val_labels, self.task)

    @cached_property
    def train_labels(self) -> np.ndarray:
        return np.load(self.directory / "train_labels.npy")

    @property
    def val_labels(self) -> np.ndarray:
        return np.load(self.directory / "val_labels.npy")

    def train_probs(self, epoch: int) -> np.ndarray:
        """Eval-mode probabilities on the teacher's own training frames after ``epoch``: the soft labels."""
        return self._probs("train", epoch)

    def val_probs(self, epoch: int) -> np.ndarray:
        return self._probs("val", epoch)

    def _probs(self, part: str, epoch: int) -> np.ndarray:
        self.record(epoch)
        path = self.directory / "probs" / f"{part}_{epoch:03d}.npy"
        probs = np.load(path, mmap_mode="r")
        if path not in self._finite:
            _require_finite(probs, lambda problem: DataError(f"{path}: {problem}: {_REFUSED}"))
            self._finite.add(path)
        return probs

    def fit_confidence(self, epoch: int) -> float:
        """Mean probability that the teacher after ``epoch`` gives to the true labels of its training frames
        (the positive entries for multi-label tasks, the annotated class for multi-class tasks)."""
        return self._curve("fit_confidence", epoch,
                           lambda: true_label_confidence(self.train_probs(epoch), self.train_labels))

    def val_confidence(self, epoch: int) -> float:
        """The mean probability given to the true validation labels after ``epoch``: the validation
        counterpart of :meth:`fit_confidence`."""
        return self._curve("val_confidence", epoch,
                           lambda: true_label_confidence(self.val_probs(epoch), self.val_labels))

    def val_nll(self, epoch: int) -> float:
        """The validation negative log-likelihood after ``epoch`` (see :func:`harness.metrics.diagnostics.nll`)."""
        return self._curve("val_nll", epoch, lambda: nll(self.val_probs(epoch), self.val_labels))

    def _curve(self, name: str, epoch: int, compute: Callable[[], float]) -> float:
        """A per-epoch value computed once: every window rule of every strategy reads these, and each
        computation reads a whole epoch's probabilities."""
        if (name, epoch) not in self._curves:
            self._curves[name, epoch] = compute()
        return self._curves[name, epoch]


class HistoryWriter:
    """Appends epochs to a history directory; each epoch's files land before its record does.

    A writer opened on the history of an interrupted run keeps its records, and an epoch added again
    (a resumed run retraining the epoch it was killed in) replaces that epoch and everything after it.
    """

    def __init__(self, directory: Path, seed: int, task: str, primary_metric: str,
                 train_labels: np.ndarray, val_labels: np.ndarray) -> None:
        self.directory = Path(directory)
        self._meta = {"seed": seed, "task": task, "primary_metric": primary_metric,
                      "epochs": _earlier_epochs(self.directory, seed, train_labels, val_labels)}
        self._val_labels = val_labels
        write_npy(self.directory / "train_labels.npy", train_labels)
        write_npy(self.directory / "val_labels.npy", val_labels)
        write_json(self.directory / "history.json", self._meta)

    def add_epoch(self, record: EpochRecord, train_probs: np.ndarray, val_probs: np.ndarray) -> dict[str, float]:
        """Store the epoch's probabilities, then its record with the diagnostics of ``val_probs``, and return
        those; a non-finite loss or probability raises :class:`DivergedError` and nothing of the epoch is stored."""
        if not math.isfinite(record.train_loss):
            raise DivergedError(f"the training loss of epoch {record.epoch} is {record.train_loss}")
        for probs in (train_probs, val_probs):
            _require_finite(probs, lambda problem: DivergedError(f"epoch {record.epoch}: {problem}"))
        val_probs = val_probs.astype(np.float32)
        write_npy(self.directory / "probs" / f"train_{record.epoch:03d}.npy", train_probs.astype(np.float32))
        write_npy(self.directory / "probs" / f"val_{record.epoch:03d}.npy", val_probs)
        diagnostics = diagnose(val_probs, self._val_labels, self._meta["task"])
        self._meta["epochs"] = [r for r in self._meta["epochs"] if r["epoch"] < record.epoch]
        self._meta["epochs"].append(asdict(record) | {"val_metrics": dict(record.val_metrics),
                                                      "diagnostics": diagnostics})
        write_json(self.directory / "history.json", self._meta)
        return diagnostics


def _earlier_epochs(directory: Path, seed: int, train_labels: np.ndarray, val_labels: np.ndarray) -> list[dict]:
    """The epoch records of an interrupted run of the same teacher in ``directory``, if there is one."""
    path = directory / "history.json"
    if not path.is_file():
        return []
    meta = json.loads(path.read_text())
    same = (meta.get("seed") == seed and np.array_equal(np.load(directory / "train_labels.npy"), train_labels)
            and np.array_equal(np.load(directory / "val_labels.npy"), val_labels))
    return list(meta["epochs"]) if same else []


def _require_finite(probs: np.ndarray, error: Callable[[str], Exception]) -> None:
    """Raise ``error(problem)`` when some of the (N, C) ``probs`` are not finite."""
    rows = np.flatnonzero(~np.isfinite(probs).all(axis=1))
    if len(rows):
        raise error(f"the probabilities of {len(rows)} of {len(probs)} frames are not finite (first: frame {rows[0]})")


class LossLog:
    """The training loss of every finished epoch of one fit, as ``{"seed": s, "epochs": [{"epoch": e,
    "train_loss": l}, ...]}`` in a JSON file, rewritten atomically after each epoch.

    Resumable like :class:`HistoryWriter`: opened on the file of an interrupted fit of the same seed, it keeps
    its records, and an epoch added again (retrained after a kill) replaces that epoch and everything after it.
    """

    def __init__(self, path: Path, seed: int) -> None:
        self.path = Path(path)
        earlier = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self._meta = {"seed": seed, "epochs": earlier["epochs"] if earlier.get("seed") == seed else []}

    def add(self, epoch: int, loss: float) -> None:
        """Record ``epoch``'s mean training loss; a non-finite one raises :class:`DivergedError`."""
        if not math.isfinite(loss):
            raise DivergedError(f"the training loss of epoch {epoch} is {loss}")
        kept = [r for r in self._meta["epochs"] if r["epoch"] < epoch]
        self._meta["epochs"] = kept + [{"epoch": epoch, "train_loss": loss}]
        write_json(self.path, self._meta)
