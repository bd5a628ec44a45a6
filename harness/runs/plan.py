"""The plan of a run: its datasets, strategies and cells, and the content-addressed key of every job.

The run's job graph, stage by stage::

    frames (per dataset) -> teacher (per cell x seed) -> soft labels (per cell x strategy x seed)
                         -> student (per distinct soft labels x seed) -> results

A job's key hashes everything its artifact depends on (:func:`harness.runs.store.job_key`): the cell's data
fingerprint and split, the backbone, the fit settings, the seed, the versions of the code that computes it,
and its upstream keys. Teachers are keyed per cell and seed, so every strategy shares them; a student's key
names the *content* of its soft labels, so strategies that produce the same soft labels share a student.
The graph is known stage by stage only: a student's key waits for its soft labels.

The plan is pure: it lists, resolves and keys, and never trains, decodes or imports torch, so it can be
built and checked alone (``bench run --dry-run``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from harness import __version__
from harness.config import RunConfig
from harness.data.dataset import Dataset, FrameIndex, Split
from harness.data.frames import frame_pipeline_id
from harness.errors import ConfigError, SdbenchError
from harness.hooks.registry import Registry
from harness.runs.store import ArtifactStore, job_key
from harness.science.strategy import Strategy
from harness.train.models import BackboneRef, resolve_backbone


@dataclass(eq=False)
class LoadedDataset:
    """A dataset of this run; compared by identity (one per name per plan)."""

    name: str
    dataset: Dataset
    version: str
    known_fingerprint: str | None = None
    """The fingerprint the run's process computed, given to worker processes: a dataset's fingerprint reads
    every label file and lists every frame, which a worker need not do again."""

    @cached_property
    def index(self) -> FrameIndex:
        return self.dataset.index()

    @cached_property
    def fingerprint(self) -> str:
        return self.known_fingerprint or self.dataset.fingerprint()

    @cached_property
    def splits(self) -> dict[str, Split]:
        return {split.name: split for split in self.dataset.splits()}


@dataclass(frozen=True)
class Job:
    """One teacher or student training run, by the names a worker needs to rebuild it."""

    stage: str
    key: str
    dataset: str
    split: str
    backbone: str
    seed: int
    teaching: str | None = None
    """Students only: the key of the soft-labels artifact they train on."""
    label: str = ""
    since: float | None = None
    """Under ``rerun: all``, the run's start: the job counts as complete only if it finished at or after it."""
    wait: bool = False
    """Wait for the job's lock when another process holds it (the scheduler's retry of a busy job), instead of
    returning a busy outcome at once."""

    def describe(self) -> str:
        label = f" ({self.label})" if self.label else ""
        return f"{self.stage} {self.dataset}/{self.split}/{self.backbone} seed {self.seed}{label}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    ok: bool
    error: str | None = None
    trained: bool = False
    """False when the job was already complete (or its failure was kept) and nothing ran."""
    busy: bool = False
    """Another process held the job's lock (and ``job.wait`` was not set): nothing ran, and the scheduler
    retries the job, waiting for the lock, once the other jobs of its stage have run."""


@dataclass(frozen=True)
class Cell:
    """One dataset x split x backbone: the unit whose teachers are shared by all strategies."""

    data: LoadedDataset
    split: Split
    backbone: str
    ref: BackboneRef

    def describe(self) -> str:
        return f"{self.data.name}/{self.split.name}/{self.backbone}"

    def job(self, stage: str, key: str, seed: int, teaching: str | None = None, label: str = "") -> Job:
        return Job(stage, key, self.data.name, self.split.name, self.backbone, seed, teaching, label)


@dataclass(frozen=True)
class Missing:
    """A result the run could not produce, and why."""

    cell: Cell
    strategy: str
    seed: int
    reason: str

    def row(self) -> dict[str, Any]:
        return {"dataset": self.cell.data.name, "split": self.cell.split.name, "backbone": self.cell.backbone,
                "strategy": self.strategy, "seed": self.seed, "reason": self.reason}


@dataclass
class Plan:
    """What a run of ``config`` consists of, resolved against ``registry``."""

    config: RunConfig
    registry: Registry
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Datasets' fingerprints known already (see :attr:`LoadedDataset.known_fingerprint`), by name."""
    _datasets: dict[str, LoadedDataset] = field(default_factory=dict, repr=False)

    # -- resolution -------------------------------------------------------------------------------

    def dataset(self, name: str) -> LoadedDataset:
        if name not in self._datasets:
            dataset = self.registry.get("dataset", name).factory(self.config.dataset_options.get(name, {}))
            self._datasets[name] = LoadedDataset(name, dataset, self.registry.provider("dataset", name).version,
                                                 self.fingerprints.get(name))
        return self._datasets[name]

    def candidate_datasets(self) -> list[tuple[LoadedDataset, str | None]]:
        """Every dataset the config names (``all``: every registered one), with why it is unavailable."""
        names = self.registry.names("dataset") if "all" in self.config.datasets else self.config.datasets
        return [(self.dataset(name), self.dataset(name).dataset.availability()) for name in names]

    def resolve_datasets(self) -> tuple[list[LoadedDataset], dict[str, str]]:
        """The datasets to run, prepared, and the skipped ones with the reason. A dataset named explicitly
        must be available; with ``all``, unavailable ones are skipped."""
        loaded, skipped = [], {}
        for data, reason in self.candidate_datasets():
            if reason and "all" in self.config.datasets:
                skipped[data.name] = reason
            else:
                loaded.append(self.ready(data, reason))
        return loaded, skipped

    @staticmethod
    def ready(data: LoadedDataset, reason: str | None) -> LoadedDataset:
        """``data`` prepared for use; a :class:`ConfigError` with ``reason`` when it is not available."""
        if reason:
            raise ConfigError(f"dataset '{data.name}' is not available: {reason}")
        data.dataset.prepare()
        return data

    def resolve_strategies(self) -> dict[str, Strategy]:
        names = self.registry.names("strategy") if "all" in self.config.strategies else self.config.strategies
        strategies = {}
        for name in names:
            params = self.config.strategy_params.get(name, {})
            try:
                strategies[name] = self.registry.get("strategy", name).factory(**params)
            except (TypeError, ValueError) as exc:  # a bad parameter, or a window strategy's bad window rule
                raise ConfigError(f"strategy_params.{name}: {exc}") from None
        return strategies

    def resolve_backbones(self) -> dict[str, BackboneRef]:
        return {name: resolve_backbone(self.registry, name) for name in self.config.backbones}

    def cell(self, dataset: str, split: str, backbone: str) -> Cell:
        data = self.dataset(dataset)
        return Cell(data, data.splits[split], backbone, resolve_backbone(self.registry, backbone))

    def cells(self, datasets: list[LoadedDataset]) -> list[Cell]:
        """Every dataset x split x backbone of ``datasets`` (listing splits may need the data)."""
        backbones = self.resolve_backbones()
        return [Cell(data, split, backbone, ref) for data in datasets for split in data.splits.values()
                for backbone, ref in backbones.items()]

    # -- job keys ---------------------------------------------------------------------------------

    def cell_config(self, cell: Cell, seed: int) -> dict[str, Any]:
        return {"dataset": cell.data.name, "fingerprint": cell.data.fingerprint,
                "split": [cell.split.name, cell.split.train, cell.split.val, cell.split.test],
                "backbone": str(cell.ref), "backbone_options": self.config.backbone_options.get(cell.backbone, {}),
                "image_size": self.config.image_size, "seed": seed}

    def versions(self, cell: Cell) -> dict[str, str]:
        return {"sdbench": __version__, "dataset": cell.data.version,
                "backbone": self.registry.provider("backbone", cell.ref.provider).version}

    def frames_key(self, cell: Cell) -> str:
        return job_key("frames", {"dataset": cell.data.name, "fingerprint": cell.data.fingerprint,
                                  "image_size": self.config.image_size},
                       versions={"dataset": cell.data.version, "frames": frame_pipeline_id()})

    def job_config(self, cell: Cell, stage: str, seed: int) -> dict[str, Any]:
        """What a teacher or student job's key hashes besides its upstream keys, and its ``done.json`` records."""
        cell_config = self.cell_config(cell, seed) | {"precision": self.config.precision}
        if stage == "teacher":
            return cell_config | {"fit": vars(self.config.teacher)}
        return cell_config | {"fit": vars(self.config.student), "alpha": self.config.distill_alpha}

    def teacher_job(self, cell: Cell, seed: int) -> Job:
        config = self.job_config(cell, "teacher", seed)
        key = job_key("teacher", config, upstream={"frames": self.frames_key(cell)}, versions=self.versions(cell))
        return cell.job("teacher", key, seed)

    def teaching_key(self, name: str, params: dict[str, Any], seed: int, teacher_keys: dict[int, str],
                     identity: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """The soft-label artifact key; ``identity`` is the strategy's :meth:`~Strategy.cache_identity`."""
        config = {"strategy": name, "params": params, "seed": seed}
        if identity:
            config["identity"] = dict(identity)
        registered = name in self.registry.names("strategy")
        versions = {"strategy": self.registry.provider("strategy", name).version if registered else __version__}
        return job_key("softlabels", config, upstream={str(s): k for s, k in teacher_keys.items()},
                       versions=versions), config

    def student_job(self, cell: Cell, seed: int, teaching: str, digest: str, label: str) -> Job:
        config = self.job_config(cell, "student", seed)
        key = job_key("student", config, upstream={"teaching": digest, "frames": self.frames_key(cell)},
                      versions=self.versions(cell))
        return cell.job("student", key, seed, teaching, label)

    # -- the dry run ------------------------------------------------------------------------------

    def describe(self, store: ArtifactStore) -> str:
        """What the run would do, without training: jobs per stage, what is complete or failed in ``store``, and
        the cost in training epochs against a naive plan that trains a teacher for every strategy and seed.
        Datasets whose data is absent are counted too (their splits need no data), and marked."""
        strategies = self.resolve_strategies()
        backbones = self.resolve_backbones()
        seeds = self.config.seeds
        lines, teachers, done, failed, present = [], 0, 0, 0, 0
        for data, reason in self.candidate_datasets():
            try:
                splits = data.splits
            except SdbenchError as exc:
                lines.append(f"{data.name}: cannot list its splits: {exc}")
                continue
            cells = self.cells([data])
            count = len(cells) * len(seeds)
            jobs = [] if reason else [self.teacher_job(cell, seed) for cell in cells for seed in seeds]
            complete = sum(store.is_complete("teacher", job.key) for job in jobs)
            failures = sum(store.failure_path("teacher", job.key).is_file() for job in jobs)
            teachers, done, failed, present = teachers + count, done + complete, failed + failures, present + (not reason)
            lines.append(f"{data.name}: {len(splits)} split(s) x {len(backbones)} backbone(s) x "
                         f"{len(seeds)} seed(s) = {count} teachers ({complete} complete)"
                         + (f"; data not present: {reason}" if reason else ""))
        students = teachers * len(strategies)
        ours = teachers * self.config.teacher.epochs + students * self.config.student.epochs
        naive = students * (self.config.teacher.epochs + self.config.student.epochs)
        lines += [f"frames jobs: {present} (one per dataset present, at {self.config.image_size}px, decoded once "
                  f"and shared by every job)",
                  f"teacher jobs: {teachers} ({done} complete" + (f", {failed} failed" if failed else "") + ")",
                  f"soft-label jobs: {students} (one per teacher seed and strategy; numpy only)",
                  f"student jobs: at most {students} ({len(strategies)} strategies per teacher seed; strategies "
                  f"that pick the same checkpoints share a student)",
                  f"training epochs: {ours}, against {naive} for a naive plan that trains a teacher for every "
                  f"strategy and seed" + (f" ({naive / ours:.1f}x)" if ours else ""),
                  f"executor: {self.config.executor}; rerun policy: {self.config.rerun}"]
        return "\n".join(lines)
