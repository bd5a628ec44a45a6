"""``bench run``: the cross-product datasets x splits x backbones x (teachers per seed, students per strategy x
seed), scheduled stage by stage on the configured executor, then the results and tables.

The plan (:mod:`harness.runs.plan`) keys every job; the job bodies (:mod:`harness.runs.jobs`,
:mod:`harness.runs.teaching`) compute them; this module only orders the stages and collects what they give.
Every teacher is trained once per cell and seed and shared by every strategy; students of strategies that
produce the same soft labels are shared too. Every job is a content-addressed artifact
(:mod:`harness.runs.store`): a rerun skips what is complete, resumes what was interrupted at its last
finished epoch, and a strategy added later costs its soft labels and its students only. A failed job is
recorded with its error; the jobs that do not depend on it still run, and the results list what is missing
and why.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from harness.config import RunConfig
from harness.hooks.registry import Registry
from harness.metrics.degenerate import degenerate
from harness.report.missing import write_missing
from harness.report.results import write_results, write_tables
from harness.runs.context import JobContext, register
from harness.runs.executor import Executor, Work
from harness.runs.jobs import build_frames
from harness.runs.loggers import LoggerGroup, build_loggers
from harness.runs.plan import Cell, Job, LoadedDataset, Missing, Outcome, Plan
from harness.runs.runinfo import write_run_record
from harness.runs.store import ArtifactStore
from harness.runs.teaching import TeachersByKey, soft_labels_job
from harness.science.strategy import Selection, Strategy
from harness.system.faults import kill_point
from harness.system.progress import Progress
from harness.train.history import TeacherHistory
from harness.train.models import check_backbones

StudentKey = tuple[Cell, str, int]
"""A student of the comparison: its cell, strategy and seed."""


@dataclass
class Runner:
    config: RunConfig
    out_dir: Path
    registry: Registry
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.plan = Plan(self.config, self.registry)
        self.context = JobContext(self.plan, self.out_dir, self.progress)
        self.work = Work(self.config.to_dict(), str(self.out_dir), self.progress.quiet)
        register(self.context, self.work.config)
        self.trained = {"teacher": 0, "student": 0}
        self._executor: Executor | None = None

    @property
    def store(self) -> ArtifactStore:
        return self.context.store

    def executor(self) -> Executor:
        if self._executor is None:
            name = self.config.executor
            self._executor = self.registry.get("executor", name).factory(
                {**self.config.executor_options.get(name, {}), "device": self.config.device})
        return self._executor

    def check_backbones(self, names: Iterable[str]) -> None:
        """Every backbone in ``names`` builds and takes the configured image size (before any job runs)."""
        check_backbones(self.registry, names, self.config.backbone_options, self.config.image_size)

    def teachers_of(self, jobs: Iterable[Job]) -> TeachersByKey:
        """The finished teacher ``jobs`` of one cell, by seed: each one's job key and history."""
        return {job.seed: (job.key, TeacherHistory(self.store.path("teacher", job.key) / "history")) for job in jobs}

    def soft_labels(self, name: str, strategy: Strategy, seed: int, teachers: TeachersByKey,
                    params: dict[str, Any] | None = None) -> tuple[str, str, Selection]:
        """:func:`harness.runs.teaching.soft_labels_job` in this run."""
        return soft_labels_job(self.context, name, strategy, seed, teachers, params)

    # -- scheduling -------------------------------------------------------------------------------

    def schedule(self, jobs: Iterable[Job]) -> dict[str, Outcome]:
        """Outcomes of ``jobs`` by key, after running on the executor those the rerun policy asks for.

        Jobs that another process is running (another ``bench run`` on this directory) are retried once the
        others have run, waiting for their locks: usually they are then complete and skipped."""
        since = self.context.since
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
        fingerprints = {job.dataset: self.plan.dataset(job.dataset).fingerprint for job in jobs}  # keyed already
        work = replace(self.work, fingerprints=fingerprints)
        for outcome in self.executor().run(jobs, work) if jobs else ():
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

    # -- the whole run ----------------------------------------------------------------------------

    @contextmanager
    def tracking(self) -> Iterator[LoggerGroup]:
        """The run's loggers (:mod:`harness.runs.loggers`), built, so that an unknown name or a missing package
        fails here, before any job, and started with the config; closed at the end, also when the run fails."""
        loggers = build_loggers(self.registry, self.config.loggers, self.config.logger_options, self.out_dir)
        self.context.active_loggers = loggers
        loggers.start_run(self.config.to_dict())
        try:
            yield loggers
        finally:
            loggers.close()
            self.context.active_loggers = None

    def run(self) -> str:
        """Run every job the rerun policy asks for; write results and tables; return the Markdown table. The
        run's loggers record it, the table included."""
        with self.tracking() as loggers:
            table = self._run()
            loggers.log_table("comparison", table)
        return table

    def describe(self) -> str:
        """What :meth:`run` would do (``--dry-run``): :meth:`harness.runs.plan.Plan.describe`."""
        return self.plan.describe(self.store)

    def _run(self) -> str:
        datasets, skipped = self.plan.resolve_datasets()
        strategies = self.plan.resolve_strategies()
        self.check_backbones(self.config.backbones)
        write_run_record(self.out_dir, self.config, self.registry, skipped)
        for name, reason in skipped.items():
            self.progress.line(f"skipped dataset {name}: {reason}")
        missing: list[Missing] = []
        cells = self.plan.cells(self._frames_stage(datasets, strategies, missing))
        teachers = self._teacher_stage(cells, strategies, missing)
        students, selections = self._soft_labels_stage(teachers, strategies, missing)
        outcomes = self.schedule(students.values())
        rows = self._result_rows(students, selections, outcomes, missing)
        results = write_results(rows, self.out_dir)
        missing_rows = write_missing([m.row() for m in missing], self.out_dir)
        table = write_tables(results, self.out_dir, list(strategies), missing_rows)
        self.progress.line(f"trained {self.trained['teacher']} teacher(s) and {self.trained['student']} student(s)"
                           + (f"; {len(missing)} result(s) missing, see missing.csv" if missing else "")
                           + f"; results in {self.out_dir}")
        return table

    def _missing_everywhere(self, cells: list[Cell], strategies: Mapping[str, Strategy], reason: str) -> list[Missing]:
        return [Missing(cell, name, seed, reason) for cell in cells for name in strategies
                for seed in self.config.seeds]

    def _frames_stage(self, datasets: list[LoadedDataset], strategies: Mapping[str, Strategy],
                      missing: list[Missing]) -> list[LoadedDataset]:
        """The datasets whose frames could be built; the others' results go to ``missing``."""
        ready = []
        for data in datasets:
            error = build_frames(self.context, data)
            if error is None:
                ready.append(data)
            else:
                self.progress.line(f"FAILED dataset {data.name}: {error}")
                missing += self._missing_everywhere(self.plan.cells([data]), strategies, error)
        return ready

    def _teacher_stage(self, cells: list[Cell], strategies: Mapping[str, Strategy],
                       missing: list[Missing]) -> dict[Cell, TeachersByKey]:
        """Every cell's teachers, trained; a cell with a failed teacher goes to ``missing`` whole."""
        seeds = self.config.seeds
        jobs = {(cell, seed): self.plan.teacher_job(cell, seed) for cell in cells for seed in seeds}
        outcomes = self.schedule(jobs.values())
        teachers = {}
        for cell in cells:
            failed = [o for seed in seeds if not (o := outcomes[jobs[cell, seed].key]).ok]
            if failed:
                reason = "; ".join(f"teacher seed {o.job.seed} failed: {o.error}" for o in failed)
                missing += self._missing_everywhere([cell], strategies, reason)
            else:
                teachers[cell] = self.teachers_of(jobs[cell, seed] for seed in seeds)
        return teachers

    def _soft_labels_stage(self, teachers: Mapping[Cell, TeachersByKey], strategies: Mapping[str, Strategy],
                           missing: list[Missing]) -> tuple[dict[StudentKey, Job], dict[StudentKey, Selection]]:
        """The student job and the selection of every cell, strategy and seed whose strategy did not fail."""
        students, selections = {}, {}
        for cell, cell_teachers in teachers.items():
            for name, strategy in strategies.items():
                for seed in self.config.seeds:
                    try:
                        key, digest, selection = self.soft_labels(name, strategy, seed, cell_teachers)
                    except Exception as exc:  # noqa: BLE001 - a failing strategy costs its own cells only
                        missing.append(Missing(cell, name, seed, f"strategy failed: {type(exc).__name__}: {exc}"))
                        continue
                    selections[cell, name, seed] = selection
                    students[cell, name, seed] = self.plan.student_job(cell, seed, key, digest, name)
        return students, selections

    def _result_rows(self, students: Mapping[StudentKey, Job], selections: Mapping[StudentKey, Selection],
                     outcomes: Mapping[str, Outcome], missing: list[Missing]) -> list[dict[str, Any]]:
        """One row per student and test metric; failed students go to ``missing``."""
        rows: list[dict[str, Any]] = []
        for (cell, name, seed), job in students.items():
            outcome = outcomes[job.key]
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
        return rows


def _degenerate_on_test(directory: Path, metrics: Mapping[str, Any], task: str) -> bool:
    """Whether the student in ``directory`` is degenerate on the test split; from its stored predictions for
    students written before ``metrics.json`` recorded it."""
    if "degenerate" in metrics:
        return metrics["degenerate"]["test"] is not None
    return degenerate(np.load(directory / "test_probs.npy"), task) is not None
