"""The cross-product runner: datasets x splits x backbones x (teachers per seed, students per strategy x seed).

The run is an explicit job graph, executed stage by stage::

    frames (per dataset) -> teacher (per cell x seed) -> soft labels (per cell x strategy x seed)
                         -> student (per distinct soft labels x seed) -> results

Every teacher is trained once per cell and seed and shared by every strategy; students of strategies that
produce the same soft labels are shared too. Every job is a content-addressed artifact
(:mod:`harness.store`): a rerun skips what is complete, resumes what was interrupted at its last finished
epoch, and a strategy added later costs its soft labels and its students only. Teachers and students run
on the configured executor (:mod:`harness.executor`); frames and soft labels are built here. A failed job
is recorded with its error; the jobs that do not depend on it still run, and the results list what is
missing and why.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from harness import __version__
from harness.atomic import write_json, write_npy
from harness.config import RunConfig, load_config
from harness.data.dataset import Dataset, FrameIndex, Split
from harness.data.frames import FrameStore
from harness.data.loader import FrameSet
from harness.degenerate import degenerate
from harness.diagnostics import true_label_confidence
from harness.errors import ConfigError, DivergedError, SdbenchError
from harness.executor import Executor, Job, Outcome, Work
from harness.faults import kill_point
from harness.history import STUDENT_HISTORY, EpochRecord, HistoryWriter, LossLog, TeacherHistory
from harness.locks import LockBusyError, held
from harness.loggers import LoggerGroup, build_loggers
from harness.models import BackboneRef, build_backbone, check_input_size, resolve_backbone
from harness.paths import sdbench_home
from harness.plugins import Registry, get_registry
from harness.progress import LOG_FILE, Progress
from harness.missing import write_missing
from harness.results import write_results, write_tables
from harness.runinfo import write_run_record
from harness.store import CHECKPOINT, ArtifactStore, FailedMeanwhile, canonical_json, job_key
from harness.strategy import Checkpoint, Selection, Strategy, soft_labels



@dataclass(eq=False)
class LoadedDataset:
    """A dataset of this run; compared by identity (one per name per runner)."""

    name: str
    dataset: Dataset
    version: str

    @cached_property
    def index(self) -> FrameIndex:
        return self.dataset.index()

    @cached_property
    def fingerprint(self) -> str:
        return self.dataset.fingerprint()

    @cached_property
    def splits(self) -> dict[str, Split]:
        return {split.name: split for split in self.dataset.splits()}


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


_RUNNERS: dict[tuple[str, str], "Runner"] = {}


def runner_for(work: Work) -> "Runner":
    """The runner of ``work``'s run in this process, built on first use (in worker processes)."""
    key = (work.out_dir, canonical_json(work.config))
    if key not in _RUNNERS:
        _RUNNERS[key] = Runner(load_config(None, work.config), Path(work.out_dir), get_registry(),
                               Progress(quiet=work.quiet))
    return _RUNNERS[key]


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
        self._datasets: dict[str, LoadedDataset] = {}
        self._executor: Executor | None = None
        self.trained = {"teacher": 0, "student": 0}
        self.started = time.time()  # rerun: all recomputes what finished before this and keeps what finished since
        self.work = Work(self.config.to_dict(), str(self.out_dir), self.progress.quiet)
        self.progress.log_path = self.out_dir / LOG_FILE
        self._loggers: LoggerGroup | None = None
        _RUNNERS[(self.work.out_dir, canonical_json(self.work.config))] = self

    # -- resolution -------------------------------------------------------------------------------

    def dataset(self, name: str) -> LoadedDataset:
        if name not in self._datasets:
            dataset = self.registry.get("dataset", name).factory(self.config.dataset_options.get(name, {}))
            self._datasets[name] = LoadedDataset(name, dataset, self.registry.provider("dataset", name).version)
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

    def check_backbones(self, names: Iterable[str]) -> None:
        """Every backbone in ``names`` builds and takes the configured image size (before any job runs)."""
        for name in names:
            ref = resolve_backbone(self.registry, name)
            backbone = build_backbone(self.registry, ref, 2, self.config.backbone_options.get(name, {}))
            check_input_size(backbone, ref, self.config.image_size)

    def executor(self) -> Executor:
        if self._executor is None:
            name = self.config.executor
            self._executor = self.registry.get("executor", name).factory(
                {**self.config.executor_options.get(name, {}), "device": self.config.device})
        return self._executor

    def cell(self, dataset: str, split: str, backbone: str) -> Cell:
        data = self.dataset(dataset)
        return Cell(data, data.splits[split], backbone, resolve_backbone(self.registry, backbone))

    # -- data -------------------------------------------------------------------------------------

    def frames(self, data: LoadedDataset, videos: tuple[str, ...]) -> FrameSet:
        key = (data.name, videos)
        if key not in self._framesets:
            self._framesets[key] = FrameSet(self._load_frames(data, videos))
        return self._framesets[key]

    def _load_frames(self, data: LoadedDataset, videos: tuple[str, ...]) -> list[np.ndarray]:
        size = self.config.image_size
        with self.progress.task(f"frames {data.name} ({len(videos)} videos, {size}px)", len(videos)) as advance:
            return self.frame_store.load(data.name, data.fingerprint, [data.index.videos[v] for v in videos], size,
                                         progress=advance)

    def prepare_frames(self, data: LoadedDataset) -> str | None:
        """Decode every video the run needs once, before any job; the error that stops this dataset, if any."""
        videos = tuple(dict.fromkeys(v for split in data.splits.values()
                                     for part in (split.train, split.val, split.test) for v in part))
        try:
            self._load_frames(data, videos)
        except SdbenchError as exc:
            return f"frames could not be built: {exc}"
        return None

    # -- job keys ---------------------------------------------------------------------------------

    def _cell_config(self, cell: Cell, seed: int) -> dict[str, Any]:
        return {"dataset": cell.data.name, "fingerprint": cell.data.fingerprint,
                "split": [cell.split.name, cell.split.train, cell.split.val, cell.split.test],
                "backbone": str(cell.ref), "backbone_options": self.config.backbone_options.get(cell.backbone, {}),
                "image_size": self.config.image_size, "seed": seed}

    def _versions(self, cell: Cell) -> dict[str, str]:
        return {"sdbench": __version__, "dataset": cell.data.version,
                "backbone": self.registry.provider("backbone", cell.ref.provider).version}

    def _frames_key(self, cell: Cell) -> str:
        return job_key("frames", {"dataset": cell.data.name, "fingerprint": cell.data.fingerprint,
                                  "image_size": self.config.image_size},
                       versions={"dataset": cell.data.version, "frames": self.frame_store.pipeline})

    def _job_config(self, cell: Cell, stage: str, seed: int) -> dict[str, Any]:
        """What a teacher or student job's key hashes besides its upstream keys, and its ``done.json`` records."""
        cell_config = self._cell_config(cell, seed) | {"precision": self.config.precision}
        if stage == "teacher":
            return cell_config | {"fit": vars(self.config.teacher)}
        return cell_config | {"fit": vars(self.config.student), "alpha": self.config.distill_alpha}

    def teacher_job(self, cell: Cell, seed: int) -> Job:
        config = self._job_config(cell, "teacher", seed)
        key = job_key("teacher", config, upstream={"frames": self._frames_key(cell)}, versions=self._versions(cell))
        return cell.job("teacher", key, seed)

    def _teaching_key(self, name: str, params: dict[str, Any], seed: int, teacher_keys: dict[int, str],
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
        config = self._job_config(cell, "student", seed)
        key = job_key("student", config, upstream={"teaching": digest, "frames": self._frames_key(cell)},
                      versions=self._versions(cell))
        return cell.job("student", key, seed, teaching, label)

    # -- executing one job (here or in a worker process) ------------------------------------------

    def execute(self, job: Job) -> Outcome:
        """Run ``job`` unless it is complete; a failure is recorded in the store and returned, not raised.

        When another process holds the job's lock, the outcome is ``busy`` at once, unless ``job.wait``: then
        the lock is awaited, and a job the other process finished meanwhile is not run again, nor one that
        failed there after this run started (its failure is this job's outcome). A failure is recorded while
        the lock is held, so that a run waiting for the job sees it."""
        if self.store.is_complete(job.stage, job.key, job.since):
            return Outcome(job, ok=True)
        recorded = False
        try:
            cell = self.cell(job.dataset, job.split, job.backbone)
            description = {"job": vars(job)} | self._job_config(cell, job.stage, job.seed)
            with self.store.writing(job.stage, job.key, description, fresh=self.config.rerun == "all",
                                    wait=job.wait, since=job.since, failed_since=self.started) as work_dir:
                if work_dir is None:
                    return Outcome(job, ok=True)
                try:
                    if job.stage == "teacher":
                        self._train_teacher(cell, job.seed, work_dir)
                    else:
                        self._train_student(cell, job, work_dir)
                except Exception as exc:
                    self.store.record_failure(job.stage, job.key, vars(job), exc)
                    recorded = True
                    raise
                finally:
                    self.loggers.end_job(job.key, job.stage)
        except LockBusyError as exc:
            return Outcome(job, ok=False, error=str(exc), busy=True)
        except FailedMeanwhile as exc:
            return Outcome(job, ok=False, error=f"{exc} (failed in another run meanwhile; not retried by this one)")
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the independent ones
            if not recorded:
                self.store.record_failure(job.stage, job.key, vars(job), exc)
            return Outcome(job, ok=False, error=f"{type(exc).__name__}: {exc}", trained=True)
        return Outcome(job, ok=True, trained=True)

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
        key = self.teacher_job(cell, seed).key

        def on_epoch(epoch: int, loss: float, model) -> None:
            train_probs = predict(model, backbone, train_frames, index.task, device, settings.eval_batch_size,
                                  precision=self.config.precision)
            val_probs = predict(model, backbone, val_frames, index.task, device, settings.eval_batch_size,
                                precision=self.config.precision)
            metrics = dataset.evaluate(val_labels, val_probs, val_videos)
            diagnostics = writer.add_epoch(EpochRecord(epoch, loss, metrics), train_probs, val_probs)
            diagnostics = {"fit_confidence": true_label_confidence(train_probs, train_labels)} | diagnostics
            self.loggers.log_epoch(key, "teacher", epoch, {"loss": loss} | {f"val/{m}": v for m, v in metrics.items()}
                                   | {f"diagnostics/{d}": v for d, v in diagnostics.items()})
            self.progress.line(f"  {name} epoch {epoch}/{settings.epochs}: loss {loss:.4f}, "
                               f"val {dataset.primary_metric} {100 * metrics[dataset.primary_metric]:.1f}")

        with self.progress.task(name, settings.epochs * len(train_frames)) as advance, _named(name):
            train(backbone, train_frames, _fit_targets(train_labels, index), index.task, settings, seed, device,
                  on_epoch=on_epoch, on_batch=advance, checkpoint=directory / CHECKPOINT,
                  precision=self.config.precision)

    def _train_student(self, cell: Cell, job: Job, directory: Path) -> None:
        """Train and evaluate one student. Writes into ``directory`` its training loss per epoch
        (:class:`~harness.history.LossLog`), ``{val,test}_probs.npy`` and ``metrics.json``: the metrics per part
        and, under ``degenerate``, per part why the student is degenerate there (:mod:`harness.degenerate`)
        or null; and its model files (:mod:`harness.export`)."""
        from harness.export import ModelCard, save_model
        from harness.training import pick_device, predict, train

        index, dataset, settings = cell.data.index, cell.data.dataset, self.config.student
        device = pick_device(self.config.device)
        train_labels, _ = index.labels(cell.split.train)
        targets = _fit_targets(train_labels, index)
        soft = self._soft_labels_of(job.teaching)
        if soft is not None:
            hard = _one_hot(train_labels, index) if index.task == "multiclass" else targets
            targets = ((1 - self.config.distill_alpha) * hard + self.config.distill_alpha * soft).astype(np.float32)
        backbone = self._new_backbone(cell, job.seed)
        train_frames = self.frames(cell.data, cell.split.train)
        name = f"student {cell.describe()} seed {job.seed} ({job.label})"
        log = LossLog(directory / STUDENT_HISTORY, job.seed)

        def on_epoch(epoch: int, loss: float, model) -> None:
            log.add(epoch, loss)
            self.loggers.log_epoch(job.key, "student", epoch, {"loss": loss})
            self.progress.line(f"  {name} epoch {epoch}/{settings.epochs}: loss {loss:.4f}")

        with self.progress.task(name, settings.epochs * len(train_frames)) as advance, _named(name):
            model = train(backbone, train_frames, targets, index.task, settings, job.seed, device,
                          on_epoch=on_epoch, on_batch=advance, checkpoint=directory / CHECKPOINT,
                          precision=self.config.precision)
        metrics, flags = {}, {}
        for part in ("val", "test"):
            videos = getattr(cell.split, part)
            labels, video_ids = index.labels(videos)
            with _named(name):
                probs = predict(model, backbone, self.frames(cell.data, videos), index.task, device,
                                settings.eval_batch_size, precision=self.config.precision)
            metrics[part] = dataset.evaluate(labels, probs, video_ids)
            flags[part] = degenerate(probs, index.task)
            write_npy(directory / f"{part}_probs.npy", probs)
        if flags["test"]:
            self.progress.line(f"  {name} is degenerate on the test split: {flags['test']}; its scores are not "
                               "evidence")
        save_model(directory, model, ModelCard(
            backbone=cell.backbone, provider=cell.ref.provider, architecture=cell.ref.architecture,
            num_classes=index.num_classes, class_names=index.class_names, image_size=self.config.image_size,
            mean=backbone.mean, std=backbone.std, task=index.task, dataset=cell.data.name, split=cell.split.name,
            strategy=job.label, seed=job.seed, job_key=job.key))
        write_json(directory / "metrics.json", metrics | {"degenerate": flags})

    def _soft_labels_of(self, key: str) -> np.ndarray | None:
        """The soft labels a student trains on (None: hard labels), read under their artifact's lock, so never
        while another run replaces them (``rerun: all``); a missing artifact is an error, never hard labels."""
        with held(self.store.lock_path("softlabels", key), f"soft labels {key}"):
            if not self.store.is_complete("softlabels", key):
                raise SdbenchError(f"the soft labels this student trains on ({self.store.path('softlabels', key)}) "
                                   "are not complete; rerun to recompute them")
            return _read_soft(self.store.path("softlabels", key))

    def _new_backbone(self, cell: Cell, seed: int):
        from harness.training import seed_everything

        seed_everything(seed)
        return build_backbone(self.registry, cell.ref, cell.data.index.num_classes,
                              self.config.backbone_options.get(cell.backbone, {}))

    # -- scheduling -------------------------------------------------------------------------------

    def schedule(self, jobs: Iterable[Job]) -> dict[str, Outcome]:
        """Outcomes of ``jobs`` by key, after running on the executor those the rerun policy asks for.

        Jobs that another process is running (another ``bench run`` on this directory) are retried once the
        others have run, waiting for their locks: usually they are then complete and skipped."""
        since = self.started if self.config.rerun == "all" else None
        outcomes, to_run = {}, []
        for job in dict((job.key, replace(job, since=since)) for job in jobs).values():
            if self.store.is_complete(job.stage, job.key, since):
                outcomes[job.key] = Outcome(job, ok=True)
            elif self.config.rerun == "never" and (failure := self.store.failure(job.stage, job.key)) is not None:
                outcomes[job.key] = Outcome(job, ok=False, error=f"{failure['error']} (earlier attempt; "
                                                                  f"not retried under rerun: never)")
            else:
                to_run.append(job)
        busy = self._run_jobs(to_run, outcomes)
        for job in busy:
            self.progress.line(f"waiting for {job.describe()}: held by another process")
        self._run_jobs([replace(job, wait=True) for job in busy], outcomes)
        return outcomes

    def _run_jobs(self, jobs: list[Job], outcomes: dict[str, Outcome]) -> list[Job]:
        """Run ``jobs`` on the executor into ``outcomes``; return those another process was running."""
        busy = []
        for outcome in self.executor().run(jobs, self.work) if jobs else ():
            if outcome.busy:
                busy.append(outcome.job)
                continue
            outcomes[outcome.job.key] = outcome
            if outcome.ok:
                self.trained[outcome.job.stage] += outcome.trained
            else:
                self.progress.line(f"FAILED {outcome.job.describe()}: {outcome.error}")
            kill_point("job-done")
        return busy

    # -- soft labels (built here: numpy only, and fast) -------------------------------------------

    def teaching(self, name: str, strategy: Strategy, seed: int, teachers: dict[int, tuple[str, TeacherHistory]],
                 params: dict[str, Any] | None = None) -> tuple[str, str, Selection]:
        """The soft labels of one strategy for the student of ``seed``: their artifact key, a digest of their
        content (``hard`` for hard labels) and the selection. ``params`` are the strategy's parameters
        (default: from the config).

        They are computed under their artifact's lock, unless they are complete by then: when another process
        computed them meanwhile, its artifact is read, not replaced (under ``rerun: all``, when it finished
        after this run started)."""
        params = self.config.strategy_params.get(name, {}) if params is None else params
        key, config = self._teaching_key(name, params, seed, {s: k for s, (k, _) in teachers.items()},
                                         strategy.cache_identity())
        since = self.started if self.config.rerun == "all" else None

        def compute(wait: bool) -> None:
            with self.store.writing("softlabels", key, config, fresh=True, wait=wait, since=since) as tmp:
                if tmp is None:
                    return
                selection, soft = soft_labels(strategy, {s: h for s, (_, h) in teachers.items()}, seed)
                write_json(tmp / "selection.json",
                           {"strategy": name, "checkpoints": [[c.seed, c.epoch] for c in selection.checkpoints],
                            "weights": selection.weights, "note": selection.note,
                            "temperature": selection.temperature,
                            "teacher_keys": {str(c.seed): teachers[c.seed][0] for c in selection.checkpoints},
                            "digest": _digest(soft)})
                if soft is not None:
                    write_npy(tmp / "soft_labels.npy", soft)

        if not self.store.is_complete("softlabels", key, since):
            try:
                compute(wait=False)
            except LockBusyError:
                self.progress.line(f"waiting for soft labels {name} seed {seed} ({key}): held by another process")
                compute(wait=True)
        path = self.store.path("softlabels", key)
        record = json.loads((path / "selection.json").read_text())
        digest = record.get("digest") or _digest(_read_soft(path))  # older artifacts did not record it
        return key, digest, _selection(record)

    # -- the whole run ----------------------------------------------------------------------------

    def cells(self, datasets: list[LoadedDataset]) -> list[Cell]:
        """Every dataset x split x backbone of ``datasets`` (listing splits may need the data)."""
        backbones = self.resolve_backbones()
        return [Cell(data, split, backbone, ref) for data in datasets for split in data.splits.values()
                for backbone, ref in backbones.items()]

    @contextmanager
    def tracking(self) -> Iterator[LoggerGroup]:
        """The run's loggers (:mod:`harness.loggers`), built, so that an unknown name or a missing package fails
        here, before any job, and started with the config; closed at the end, also when the run fails."""
        self._loggers = build_loggers(self.registry, self.config.loggers, self.config.logger_options, self.out_dir)
        self._loggers.start_run(self.config.to_dict())
        try:
            yield self._loggers
        finally:
            self._loggers.close()
            self._loggers = None

    @property
    def loggers(self) -> LoggerGroup:
        """What jobs log their epochs to: the loggers of :meth:`tracking` while it lasts; otherwise (in a worker
        process) built on first use, a logger that cannot be built left out with a warning."""
        if self._loggers is None:
            self._loggers = build_loggers(self.registry, self.config.loggers, self.config.logger_options,
                                          self.out_dir, strict=False)
        return self._loggers

    def run(self) -> str:
        """Run every job the rerun policy asks for; write results and tables; return the Markdown table. The
        run's loggers record it, the table included."""
        with self.tracking() as loggers:
            table = self._run()
            loggers.log_table("comparison", table)
        return table

    def _run(self) -> str:
        datasets, skipped = self.resolve_datasets()
        strategies = self.resolve_strategies()
        self.check_backbones(self.config.backbones)
        write_run_record(self.out_dir, self.config, self.registry, skipped)
        for name, reason in skipped.items():
            self.progress.line(f"skipped dataset {name}: {reason}")
        missing: list[Missing] = []
        ready = []
        for data in datasets:
            error = self.prepare_frames(data)
            if error is None:
                ready.append(data)
            else:
                self.progress.line(f"FAILED dataset {data.name}: {error}")
                missing += [Missing(cell, name, seed, error) for cell in self.cells([data])
                            for name in strategies for seed in self.config.seeds]
        cells = self.cells(ready)
        teacher_jobs = {(cell, seed): self.teacher_job(cell, seed) for cell in cells for seed in self.config.seeds}
        teacher_outcomes = self.schedule(teacher_jobs.values())

        students: dict[tuple[Cell, str, int], Job] = {}
        selections: dict[tuple[Cell, str, int], Selection] = {}
        for cell in cells:
            failed = [o for seed in self.config.seeds if not (o := teacher_outcomes[teacher_jobs[cell, seed].key]).ok]
            if failed:
                reason = "; ".join(f"teacher seed {o.job.seed} failed: {o.error}" for o in failed)
                missing += [Missing(cell, name, seed, reason) for name in strategies for seed in self.config.seeds]
                continue
            teachers = {seed: (job.key, TeacherHistory(self.store.path("teacher", job.key) / "history"))
                        for seed in self.config.seeds for job in [teacher_jobs[cell, seed]]}
            for name, strategy in strategies.items():
                for seed in self.config.seeds:
                    try:
                        key, digest, selection = self.teaching(name, strategy, seed, teachers)
                    except Exception as exc:  # noqa: BLE001 - a failing strategy costs its own cells only
                        missing.append(Missing(cell, name, seed, f"strategy failed: {type(exc).__name__}: {exc}"))
                        continue
                    selections[cell, name, seed] = selection
                    students[cell, name, seed] = self.student_job(cell, seed, key, digest, name)
        student_outcomes = self.schedule(students.values())

        rows: list[dict[str, Any]] = []
        for (cell, name, seed), job in students.items():
            outcome = student_outcomes[job.key]
            if not outcome.ok:
                missing.append(Missing(cell, name, seed, f"student failed: {outcome.error}"))
                continue
            directory = self.store.path("student", job.key)
            metrics = json.loads((directory / "metrics.json").read_text())
            flagged = _degenerate_on_test(directory, metrics, cell.data.index.task)
            for metric, value in metrics["test"].items():
                rows.append({"dataset": cell.data.name, "split": cell.split.name, "backbone": cell.backbone,
                             "strategy": name, "seed": seed, "metric": metric, "value": value,
                             "primary": metric == cell.data.dataset.primary_metric,
                             "checkpoints": selections[cell, name, seed].describe(), "student_key": job.key,
                             "degenerate": flagged})
        results = write_results(rows, self.out_dir)
        missing_rows = write_missing([m.row() for m in missing], self.out_dir)
        table = write_tables(results, self.out_dir, list(strategies), missing_rows)
        self.progress.line(f"trained {self.trained['teacher']} teacher(s) and {self.trained['student']} student(s)"
                           + (f"; {len(missing)} result(s) missing, see missing.csv" if missing else "")
                           + f"; results in {self.out_dir}")
        return table

    def plan(self) -> str:
        """What :meth:`run` would do, without training: jobs per stage, what is complete or failed, and the cost
        in training epochs against a naive plan that trains a teacher for every strategy and seed. Datasets
        whose data is absent are counted too (their splits need no data), and marked."""
        strategies = self.resolve_strategies()
        backbones = self.resolve_backbones()
        lines, teachers, done, failed, present = [], 0, 0, 0, 0
        for data, reason in self.candidate_datasets():
            try:
                splits = data.splits
            except SdbenchError as exc:
                lines.append(f"{data.name}: cannot list its splits: {exc}")
                continue
            cells = self.cells([data])
            count = len(cells) * len(self.config.seeds)
            jobs = [] if reason else [self.teacher_job(cell, seed) for cell in cells for seed in self.config.seeds]
            complete = sum(self.store.is_complete("teacher", job.key) for job in jobs)
            failures = sum(self.store.failure_path("teacher", job.key).is_file() for job in jobs)
            teachers, done, failed, present = teachers + count, done + complete, failed + failures, present + (not reason)
            lines.append(f"{data.name}: {len(splits)} split(s) x {len(backbones)} backbone(s) x "
                         f"{len(self.config.seeds)} seed(s) = {count} teachers ({complete} complete)"
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


@contextmanager
def _named(job: str) -> Iterator[None]:
    """Name ``job`` in a :class:`DivergedError` raised inside, which says only the epoch and batch: the error
    travels on without its job (failure records, missing.csv, sweeps)."""
    try:
        yield
    except DivergedError as exc:
        raise DivergedError(f"{job}: {exc}") from exc


def _degenerate_on_test(directory: Path, metrics: Mapping[str, Any], task: str) -> bool:
    """Whether the student in ``directory`` is degenerate on the test split; from its stored predictions for
    students written before ``metrics.json`` recorded it."""
    if "degenerate" in metrics:
        return metrics["degenerate"]["test"] is not None
    return degenerate(np.load(directory / "test_probs.npy"), task) is not None


def _fit_targets(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return labels.astype(np.float32) if index.task == "multilabel" else labels.astype(np.int64)


def _one_hot(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return np.eye(index.num_classes, dtype=np.float32)[labels]


def _selection(record: dict[str, Any]) -> Selection:
    """The selection written in a soft-labels artifact's ``selection.json``."""
    return Selection(tuple(Checkpoint(s, e) for s, e in record["checkpoints"]),
                     None if record["weights"] is None else tuple(record["weights"]), record["note"],
                     record.get("temperature", 1.0))


def _digest(soft: np.ndarray | None) -> str:
    """What a student's key depends on: the soft labels' content, or ``hard``."""
    return "hard" if soft is None else hashlib.sha256(soft.tobytes()).hexdigest()[:20]


def _read_soft(path: Path) -> np.ndarray | None:
    """The soft labels of a soft-labels artifact; None for hard labels."""
    soft_path = path / "soft_labels.npy"
    return np.load(soft_path) if soft_path.exists() else None
