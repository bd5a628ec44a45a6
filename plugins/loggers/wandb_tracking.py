"""Weights & Biases (``pip install 'sdbench[wandb]'``), offline by default: one W&B run per job (``job_type``
its stage, named ``<stage> <job key>``) with its per-epoch metrics at step = epoch, and, at the end, one run
named ``run`` with the resolved config and the final tables (in its summary, under ``tables/<name>``), all
in one group, the run directory's name. ``wandb sync <run dir>/wandb`` uploads offline runs.

Options (``logger_options.wandb``): ``project`` (default ``sdbench``), ``group``, ``entity`` and ``mode``
(default: ``$WANDB_MODE``, else ``offline``).

A process holds one W&B run at a time (older wandb versions allow no more): a job's run is finished when the
job ends, and the run-level one is made at the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from harness.api import Logger, LoggerSpec, hookimpl, require_extra


class WandbLogger(Logger):
    def __init__(self, settings: Mapping[str, Any]) -> None:
        import wandb

        self.wandb = wandb
        self.settings = dict(settings)
        self._jobs: dict[str, Any] = {}
        self._config: Mapping[str, Any] | None = None
        self._tables: dict[str, str] = {}

    def _init(self, **run: Any) -> Any:
        return self.wandb.init(**self.settings, **run, reinit=True)

    def start_run(self, config: Mapping[str, Any]) -> None:
        self._config = config

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        if job not in self._jobs:
            self._jobs[job] = self._init(name=f"{stage} {job}", job_type=stage, config={"job": job})
        self._jobs[job].log(dict(metrics), step=epoch)

    def end_job(self, job: str, stage: str) -> None:
        run = self._jobs.pop(job, None)
        if run is not None:
            run.finish()

    def log_table(self, name: str, table: str) -> None:
        self._tables[name] = table

    def close(self) -> None:
        for run in self._jobs.values():
            run.finish()
        self._jobs.clear()
        if self._config is not None:
            run = self._init(name="run", job_type="run", config=dict(self._config))
            run.summary.update({f"tables/{name}": table for name, table in self._tables.items()})
            run.finish()
            self._config, self._tables = None, {}


def make_wandb(run_dir: Path, options: Mapping[str, Any]) -> Logger:
    require_extra("wandb", "wandb", "wandb", kind="logger")
    settings = {"project": options.get("project", "sdbench"), "group": options.get("group", run_dir.resolve().name),
                "entity": options.get("entity"), "mode": options.get("mode", os.environ.get("WANDB_MODE", "offline")),
                "dir": str(run_dir)}
    return WandbLogger(settings)


@hookimpl
def sdbench_loggers() -> list[LoggerSpec]:
    return [LoggerSpec("wandb", "Weights & Biases runs per job, offline by default (needs sdbench[wandb])",
                       make_wandb)]
