"""The job bodies: building a dataset's frames, training a teacher, training and evaluating a student, and
:func:`execute`, what an executor calls for a teacher or student job, here or in a worker process.

A body writes into the work directory the store gives it (:meth:`harness.runs.store.ArtifactStore.writing`);
the artifact appears, complete, when the body returns. The soft-labels job is in :mod:`harness.runs.teaching`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.data.dataset import FrameIndex
from harness.errors import DivergedError, SdbenchError
from harness.metrics.degenerate import degenerate
from harness.metrics.diagnostics import true_label_confidence
from harness.runs.context import JobContext
from harness.runs.plan import Cell, Job, LoadedDataset, Outcome
from harness.runs.store import CHECKPOINT, FailedMeanwhile
from harness.runs.teaching import student_soft_labels
from harness.system.atomic import write_json, write_npy
from harness.system.locks import LockBusyError
from harness.train.history import STUDENT_HISTORY, EpochRecord, HistoryWriter, LossLog
from harness.train.model_files import ModelCard, save_model
from harness.train.models import Backbone, build_backbone


def build_frames(context: JobContext, data: LoadedDataset) -> str | None:
    """Decode every video the run needs once, before any job; the error that stops this dataset, if any."""
    videos = tuple(dict.fromkeys(v for split in data.splits.values()
                                 for part in (split.train, split.val, split.test) for v in part))
    try:
        context.load_frames(data, videos)
    except SdbenchError as exc:
        return f"frames could not be built: {exc}"
    return None


def execute(context: JobContext, job: Job) -> Outcome:
    """Run ``job`` unless it is complete; a failure is recorded in the store and returned, not raised.

    When another process holds the job's lock, the outcome is ``busy`` at once, unless ``job.wait``: then the
    lock is awaited, and a job the other process finished meanwhile is not run again, nor one that failed there
    after this run started (its failure is this job's outcome). A failure is recorded while the lock is held,
    so that a run waiting for the job sees it."""
    store = context.store
    if store.is_complete(job.stage, job.key, job.since):
        return Outcome(job, ok=True)
    recorded = False
    try:
        cell = context.plan.cell(job.dataset, job.split, job.backbone)
        description = {"job": vars(job)} | context.plan.job_config(cell, job.stage, job.seed)
        with store.writing(job.stage, job.key, description, fresh=context.config.rerun == "all", wait=job.wait,
                           since=job.since, failed_since=context.started) as work_dir:
            if work_dir is None:
                return Outcome(job, ok=True)
            try:
                if job.stage == "teacher":
                    train_teacher(context, cell, job, work_dir)
                else:
                    train_student(context, cell, job, work_dir)
            except Exception as exc:
                store.record_failure(job.stage, job.key, vars(job), exc)
                recorded = True
                raise
            finally:
                context.loggers.end_job(job.key, job.stage)
    except LockBusyError as exc:
        return Outcome(job, ok=False, error=str(exc), busy=True)
    except FailedMeanwhile as exc:
        return Outcome(job, ok=False, error=f"{exc} (failed in another run meanwhile; not retried by this one)")
    except Exception as exc:  # noqa: BLE001 - one failed job must not stop the independent ones
        if not recorded:
            store.record_failure(job.stage, job.key, vars(job), exc)
        return Outcome(job, ok=False, error=f"{type(exc).__name__}: {exc}", trained=True)
    return Outcome(job, ok=True, trained=True)


def train_teacher(context: JobContext, cell: Cell, job: Job, directory: Path) -> None:
    """Train one teacher, writing its history (probabilities and diagnostics per epoch) into ``directory``."""
    from harness.train.fit import pick_device, predict, train

    config, loggers = context.config, context.loggers
    index, dataset, settings = cell.data.index, cell.data.dataset, config.teacher
    device = pick_device(config.device)
    train_frames, val_frames = context.frames(cell.data, cell.split.train), context.frames(cell.data, cell.split.val)
    train_labels, _ = index.labels(cell.split.train)
    val_labels, val_videos = index.labels(cell.split.val)
    writer = HistoryWriter(directory / "history", job.seed, index.task, dataset.primary_metric, train_labels,
                           val_labels)
    backbone = _new_backbone(context, cell, job.seed)
    name = f"teacher {cell.describe()} seed {job.seed}"

    def on_epoch(epoch: int, loss: float, model) -> None:
        train_probs = predict(model, backbone, train_frames, index.task, device, settings.eval_batch_size,
                              precision=config.precision)
        val_probs = predict(model, backbone, val_frames, index.task, device, settings.eval_batch_size,
                            precision=config.precision)
        metrics = dataset.evaluate(val_labels, val_probs, val_videos)
        diagnostics = writer.add_epoch(EpochRecord(epoch, loss, metrics), train_probs, val_probs)
        if loggers:
            diagnostics = {"fit_confidence": true_label_confidence(train_probs, train_labels)} | diagnostics
            loggers.log_epoch(job.key, "teacher", epoch, {"loss": loss} | {f"val/{m}": v for m, v in metrics.items()}
                              | {f"diagnostics/{d}": v for d, v in diagnostics.items()})
        context.progress.line(f"  {name} epoch {epoch}/{settings.epochs}: loss {loss:.4f}, "
                              f"val {dataset.primary_metric} {100 * metrics[dataset.primary_metric]:.1f}")

    with context.progress.task(name, settings.epochs * len(train_frames)) as advance, _named(name):
        train(backbone, train_frames, _fit_targets(train_labels, index), index.task, settings, job.seed, device,
              on_epoch=on_epoch, on_batch=advance, checkpoint=directory / CHECKPOINT, precision=config.precision)


def train_student(context: JobContext, cell: Cell, job: Job, directory: Path) -> None:
    """Train and evaluate one student. Writes into ``directory`` its training loss per epoch
    (:class:`~harness.train.history.LossLog`), ``{val,test}_probs.npy`` and ``metrics.json``: the metrics per
    part and, under ``degenerate``, per part why the student is degenerate there
    (:mod:`harness.metrics.degenerate`) or null; and its model files (:mod:`harness.train.model_files`)."""
    from harness.train.fit import pick_device, predict, train

    config = context.config
    index, dataset, settings = cell.data.index, cell.data.dataset, config.student
    device = pick_device(config.device)
    train_labels, _ = index.labels(cell.split.train)
    targets = _fit_targets(train_labels, index)
    soft = student_soft_labels(context, job.teaching)
    if soft is not None:
        hard = _one_hot(train_labels, index) if index.task == "multiclass" else targets
        targets = ((1 - config.distill_alpha) * hard + config.distill_alpha * soft).astype(np.float32)
    backbone = _new_backbone(context, cell, job.seed)
    train_frames = context.frames(cell.data, cell.split.train)
    name = f"student {cell.describe()} seed {job.seed} ({job.label})"
    log = LossLog(directory / STUDENT_HISTORY, job.seed)

    def on_epoch(epoch: int, loss: float, model) -> None:
        log.add(epoch, loss)
        context.loggers.log_epoch(job.key, "student", epoch, {"loss": loss})
        context.progress.line(f"  {name} epoch {epoch}/{settings.epochs}: loss {loss:.4f}")

    with context.progress.task(name, settings.epochs * len(train_frames)) as advance, _named(name):
        model = train(backbone, train_frames, targets, index.task, settings, job.seed, device,
                      on_epoch=on_epoch, on_batch=advance, checkpoint=directory / CHECKPOINT,
                      precision=config.precision)
    metrics, flags = {}, {}
    for part in ("val", "test"):
        videos = getattr(cell.split, part)
        labels, video_ids = index.labels(videos)
        with _named(name):
            probs = predict(model, backbone, context.frames(cell.data, videos), index.task, device,
                            settings.eval_batch_size, precision=config.precision)
        metrics[part] = dataset.evaluate(labels, probs, video_ids)
        flags[part] = degenerate(probs, index.task)
        write_npy(directory / f"{part}_probs.npy", probs)
    if flags["test"]:
        context.progress.line(f"  {name} is degenerate on the test split: {flags['test']}; its scores are not "
                              "evidence")
    save_model(directory, model, ModelCard(
        backbone=cell.backbone, provider=cell.ref.provider, architecture=cell.ref.architecture,
        num_classes=index.num_classes, class_names=index.class_names, image_size=config.image_size,
        mean=backbone.mean, std=backbone.std, task=index.task, dataset=cell.data.name, split=cell.split.name,
        strategy=job.label, seed=job.seed, job_key=job.key))
    write_json(directory / "metrics.json", metrics | {"degenerate": flags})


def _new_backbone(context: JobContext, cell: Cell, seed: int) -> Backbone:
    from harness.train.fit import seed_everything

    seed_everything(seed)
    return build_backbone(context.plan.registry, cell.ref, cell.data.index.num_classes,
                          context.config.backbone_options.get(cell.backbone, {}))


@contextmanager
def _named(job: str) -> Iterator[None]:
    """Name ``job`` in a :class:`DivergedError` raised inside, which says only the epoch and batch: the error
    travels on without its job (failure records, missing.csv, sweeps)."""
    try:
        yield
    except DivergedError as exc:
        raise DivergedError(f"{job}: {exc}") from exc


def _fit_targets(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return labels.astype(np.float32) if index.task == "multilabel" else labels.astype(np.int64)


def _one_hot(labels: np.ndarray, index: FrameIndex) -> np.ndarray:
    return np.eye(index.num_classes, dtype=np.float32)[labels]
