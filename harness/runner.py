"""The cross-product runner: datasets x splits x backbones x (teachers per seed, students per strategy x seed).

Every teacher run is trained once per cell and seed and shared by every strategy; every job is a
content-addressed artifact (:mod:`harness.store`), so a rerun skips what is complete and a strategy added
later costs its soft labels and its students only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.atomic import write_json, write_npy
from harness.config import RunConfig
from harness.data.dataset import Dataset, FrameIndex, Split
from harness.data.frames import FrameStore
from harness.data.loader import FrameSet
from harness.errors import ConfigError, SdbenchError
from harness.history import EpochRecord, HistoryWriter, TeacherHistory
from harness.models import BackboneRef, build_backbone, resolve_backbone
from harness.paths import sdbench_home
from harness.plugins import Registry
from harness.progress import Progress
from harness.results import write_results, write_tables
from harness.runinfo import write_run_record
from harness.store import ArtifactStore, job_key
from harness.strategy import Checkpoint, Selection, Strategy, soft_labels


@dataclass
class LoadedDataset:
    name: str
    dataset: Dataset
    version: str

    @cached_property
    def index(self) -> FrameIndex:
        return self.dataset.index()

    @cached_property
    def fingerprint(self) -> str:
        return self.dataset.fingerprint()


@dataclass(frozen=True)
class Cell:
    """One dataset x split x backbone: the unit whose teachers are shared by all strategies."""

    data: LoadedDataset
    split: Split
    backbone: str
    ref: BackboneRef

    def describe(self) -> str:
        return f"{self.data.name}/{self.split.name}/{self.backbone}"


@dataclass
class Runner:
    config: RunConfig
    out_dir: Path
    registry: Registry
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.store = ArtifactStore(self.out_dir / "jobs")
        self.frame_store = FrameStore(sdbench_home())
        self._framesets: dict[tuple[str, tuple[str, ...]], FrameSet] = {}
        self.trained = {"teacher": 0, "student": 0}

    # -- resolution -------------------------------------------------------------------------------

    def candidate_datasets(self) -> list[tuple[LoadedDataset, str | None]]:
        """Every dataset the config names (``all``: every registered one), with why it is unavailable."""
        names = self.registry.names("dataset") if "all" in self.config.datasets else self.config.datasets
        candidates = []
        for name in names:
            dataset = self.registry.get("dataset", name).factory(self.config.dataset_options.get(name, {}))
            version = self.registry.provider("dataset", name).version
            candidates.append((LoadedDataset(name, dataset, version), dataset.availability()))
        return candidates

    def resolve_datasets(self) -> tuple[list[LoadedDataset], dict[str, str]]:
        """The datasets to run, prepared, and the skipped ones with the reason. A dataset named explicitly
        must be available; with ``all``, unavailable ones are skipped."""
        loaded, skipped = [], {}
        for data, reason in self.candidate_datasets():
            if reason and "all" not in self.config.datasets:
                raise ConfigError(f"dataset '{data.name}' is not available: {reason}")
            if reason:
                skipped[data.name] = reason
                continue
            data.dataset.prepare()
            loaded.append(data)
        return loaded, skipped

    def resolve_strategies(self) -> dict[str, Strategy]:
        names = self.registry.names("strategy") if "all" in self.config.strategies else self.config.strategies
        strategies = {}
        for name in names:
            params = self.config.strategy_params.get(name, {})
            try:
                strategies[name] = self.registry.get("strategy", name).factory(**params)
            except TypeError as exc:
                raise ConfigError(f"strategy_params.{name}: {exc}") from None
        return strategies

    # -- data -------------------------------------------------------------------------------------

    def frames(self, data: LoadedDataset, videos: tuple[str, ...]) -> FrameSet:
        key = (data.name, videos)
        if key not in self._framesets:
            size = self.config.image_size
            with self.progress.task(f"frames {data.name} ({len(videos)} videos, {size}px)", len(videos)) as advance:
                arrays = []
                for video in videos:
                    arrays.append(self.frame_store.frames(data.name, data.fingerprint,
                                                          data.index.videos[video], size))
                    advance(1)
            self._framesets[key] = FrameSet(arrays)
        return self._framesets[key]

    # -- jobs -------------------------------------------------------------------------------------

    def _cell_config(self, cell: Cell, seed: int) -> dict[str, Any]:
        return {"dataset": cell.data.name, "fingerprint": cell.data.fingerprint,
                "split": [cell.split.name, cell.split.train, cell.split.val, cell.split.test],
                "backbone": str(cell.ref), "backbone_options": self.config.backbone_options.get(cell.backbone, {}),
                "image_size": self.config.image_size, "seed": seed}

    def _versions(self, cell: Cell) -> dict[str, str]:
        return {"sdbench": __version__, "dataset": cell.data.version,
                "backbone": self.registry.provider("backbone", cell.ref.provider).version}

    def _new_backbone(self, cell: Cell, seed: int):
        from harness.training import seed_everything

        seed_everything(seed)
        return build_backbone(self.registry, cell.ref, cell.data.index.num_classes,
                              self.config.backbone_options.get(cell.backbone, {}))

    def _teacher_job(self, cell: Cell, seed: int) -> tuple[str, dict[str, Any]]:
        config = self._cell_config(cell, seed) | {"fit": vars(self.config.teacher)}
        return job_key("teacher", config, versions=self._versions(cell)), config

    def teacher(self, cell: Cell, seed: int) -> tuple[str, TeacherHistory]:
        key, config = self._teacher_job(cell, seed)
        if not self.store.is_complete("teacher", key):
            with self.store.writing("teacher", key, config) as tmp:
                self._train_teacher(cell, seed, tmp)
            self.trained["teacher"] += 1
        return key, TeacherHistory(self.store.path("teacher", key) / "history")

    def _train_teacher(self, cell: Cell, seed: int, directory: Path) -> None:
        from harness.training import pick_device, predict, train

        index, dataset, settings = cell.data.index, cell.data.dataset, self.config.teacher
        device = pick_device(self.config.device)
        train_frames, val_frames = self.frames(cell.data, cell.split.train), self.frames(cell.data, cell.split.val)
        train_labels, _ = index.labels(cell.split.train)
        val_labels, val_videos = index.labels(cell.split.val)
        writer = HistoryWriter(directory / "history", seed, index.task, dataset.primary_metric,
                               train_labels, val_labels)
        backbone = self._new_backbone(cell, seed)
        name = f"teacher {cell.describe()} seed {seed}"

        def on_epoch(epoch: int, loss: float, model) -> None:
            train_probs = predict(model, backbone, train_frames, index.task, device, settings.eval_batch_size)
            val_probs = predict(model, backbone, val_frames, index.task, device, settings.eval_batch_size)
            metrics = dataset.evaluate(val_labels, val_probs, val_videos)
            writer.add_epoch(EpochRecord(epoch, loss, metrics), train_probs, val_probs)
            self.progress.line(f"  {name} epoch {epoch}/{settings.epochs}: loss {loss:.4f}, "
                               f"val {dataset.primary_metric} {100 * metrics[dataset.primary_metric]:.1f}")

        with self.progress.task(name, settings.epochs * len(train_frames)) as advance:
            train(backbone, train_frames, _fit_targets(train_labels, index), index.task, settings, seed, device,
                  on_epoch=on_epoch, on_batch=advance)

    def teaching(self, cell: Cell, name: str, strategy: Strategy, seed: int,
                 teachers: dict[int, tuple[str, TeacherHistory]]) -> tuple[str, Selection, np.ndarray | None]:
        """The soft labels of one strategy for the student of ``seed``, and a digest of their content."""
        spec_version = self.registry.provider("strategy", name).version
        config = {"strategy": name, "params": self.config.strategy_params.get(name, {}), "seed": seed}
        key = job_key("softlabels", config, upstream={str(s): k for s, (k, _) in teachers.items()},
                      versions={"strategy": spec_version})
        path = self.store.path("softlabels", key)
        if not self.store.is_complete("softlabels", key):
            selection, soft = soft_labels(strategy, {s: h for s, (_, h) in teachers.items()}, seed)
            record = {"strategy": name, "checkpoints": [[c.seed, c.epoch] for c in selection.checkpoints],
                      "weights": selection.weights, "note": selection.note,
                      "teacher_keys": {str(c.seed): teachers[c.seed][0] for c in selection.checkpoints}}
            with self.store.writing("softlabels", key, config) as tmp:
                write_json(tmp / "selection.json", record)
                if soft is not None:
                    write_npy(tmp / "soft_labels.npy", soft)
        return _read_teaching(path)

    def student(self, cell: Cell, seed: int, digest: str, soft: np.ndarray | None,
                label: str) -> tuple[str, dict]:
        config = self._cell_config(cell, seed) | {"fit": vars(self.config.student),
                                                   "alpha": self.config.distill_alpha}
        key = job_key("student", config, upstream={"teaching": digest}, versions=self._versions(cell))
        if not self.store.is_complete("student", key):
            with self.store.writing("student", key, config) as tmp:
                self._train_student(cell, seed, soft, tmp, label)
            self.trained["student"] += 1
        return key, json.loads((self.store.path("student", key) / "metrics.json").read_text())

    def _train_student(self, cell: Cell, seed: int, soft: np.ndarray | None, directory: Path,
                       label: str) -> None:
        from harness.training import pick_device, predict, train

        index, dataset, settings = cell.data.index, cell.data.dataset, self.config.student
        device = pick_device(self.config.device)
        train_labels, _ = index.labels(cell.split.train)
        targets = _fit_targets(train_labels, index)
        if soft is not None:
            hard = _one_hot(train_labels, index) if index.task == "multiclass" else targets
            targets = ((1 - self.config.distill_alpha) * hard + self.config.distill_alpha * soft).astype(np.float32)
        backbone = self._new_backbone(cell, seed)
        train_frames = self.frames(cell.data, cell.split.train)
        name = f"student {cell.describe()} seed {seed} ({label})"
        with self.progress.task(name, settings.epochs * len(train_frames)) as adv:
            model = train(backbone, train_frames, targets, index.task, settings, seed, device, on_batch=adv)
        metrics = {}
        for part in ("val", "test"):
            videos = getattr(cell.split, part)
            labels, video_ids = index.labels(videos)
            probs = predict(model, backbone, self.frames(cell.data, videos), index.task, device,
                            settings.eval_batch_size)
            metrics[part] = dataset.evaluate(labels, probs, video_ids)
            write_npy(directory / f"{part}_probs.npy", probs)
        write_json(directory / "metrics.json", metrics)

    # -- the whole run ----------------------------------------------------------------------------

    def run(self) -> str:
        """Run every job not yet complete; write results and tables; return the Markdown table."""
        datasets, skipped = self.resolve_datasets()
        strategies = self.resolve_strategies()
        backbones = {name: resolve_backbone(self.registry, name) for name in self.config.backbones}
        write_run_record(self.out_dir, self.config, self.registry, skipped)
        for name, reason in skipped.items():
            self.progress.line(f"skipped dataset {name}: {reason}")
        rows: list[dict[str, Any]] = []
        for data in datasets:
            for split in data.dataset.splits():
                for backbone, ref in backbones.items():
                    rows += self._run_cell(Cell(data, split, backbone, ref), strategies)
                    write_results(rows, self.out_dir)
        results = write_results(rows, self.out_dir)
        table = write_tables(results, self.out_dir, list(strategies))
        self.progress.line(f"trained {self.trained['teacher']} teacher(s) and {self.trained['student']} student(s); "
                           f"results in {self.out_dir}")
        return table

    def plan(self) -> str:
        """What :meth:`run` would do, without training: jobs per stage, what is complete, and the cost in
        training epochs against a naive plan that trains a teacher for every strategy and seed. Datasets whose
        data is absent are counted too (their splits need no data), and marked."""
        strategies = self.resolve_strategies()
        backbones = {name: resolve_backbone(self.registry, name) for name in self.config.backbones}
        lines, teachers, done = [], 0, 0
        for data, reason in self.candidate_datasets():
            try:
                splits = data.dataset.splits()
            except SdbenchError as exc:
                lines.append(f"{data.name}: cannot list its splits: {exc}")
                continue
            cells = [Cell(data, split, backbone, ref) for split in splits for backbone, ref in backbones.items()]
            count = len(cells) * len(self.config.seeds)
            complete = 0 if reason else sum(self.store.is_complete("teacher", self._teacher_job(cell, seed)[0])
                                            for cell in cells for seed in self.config.seeds)
            teachers, done = teachers + count, done + complete
            lines.append(f"{data.name}: {len(splits)} split(s) x {len(backbones)} backbone(s) x "
                         f"{len(self.config.seeds)} seed(s) = {count} teachers ({complete} complete)"
                         + (f"; data not present: {reason}" if reason else ""))
        students = teachers * len(strategies)
        ours = teachers * self.config.teacher.epochs + students * self.config.student.epochs
        naive = students * (self.config.teacher.epochs + self.config.student.epochs)
        lines += [f"teacher jobs: {teachers} ({done} complete)",
                  f"student jobs: at most {students} ({len(strategies)} strategies per teacher seed; strategies "
                  f"that pick the same checkpoints share a student)",
                  f"training epochs: {ours}, against {naive} for a naive plan that trains a teacher for every "
                  f"strategy and seed" + (f" ({naive / ours:.1f}x)" if ours else "")]
        return "\n".join(lines)

    def _run_cell(self, cell: Cell, strategies: dict[str, Strategy]) -> list[dict[str, Any]]:
        teachers = {seed: self.teacher(cell, seed) for seed in self.config.seeds}
        rows = []
        for name, strategy in strategies.items():
            for seed in self.config.seeds:
                digest, selection, soft = self.teaching(cell, name, strategy, seed, teachers)
                key, metrics = self.student(cell, seed, digest, soft, name)
                for metric, value in metrics["test"].items():
                    rows.append({"dataset": cell.data.name, "split": cell.split.name, "backbone": cell.backbone,
                                 "strategy": name, "seed": seed, "metric": metric, "value": value,
                                 "primary": metric == cell.data.dataset.primary_metric,
                                 "checkpoints": selection.describe(), "student_key": key})
        return rows


def _fit_targets(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return labels.astype(np.float32) if index.task == "multilabel" else labels.astype(np.int64)


def _one_hot(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return np.eye(index.num_classes, dtype=np.float32)[labels]


def _read_teaching(path: Path) -> tuple[str, Selection, np.ndarray | None]:
    record = json.loads((path / "selection.json").read_text())
    selection = Selection(tuple(Checkpoint(s, e) for s, e in record["checkpoints"]),
                          None if record["weights"] is None else tuple(record["weights"]), record["note"])
    soft_path = path / "soft_labels.npy"
    if not soft_path.exists():
        return "hard", selection, None
    soft = np.load(soft_path)
    return hashlib.sha256(soft.tobytes()).hexdigest()[:20], selection, soft
