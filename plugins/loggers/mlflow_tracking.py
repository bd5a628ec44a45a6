"""MLflow (``pip install 'sdbench[mlflow]'``): one MLflow run per job, named ``<stage> <job key>``, with its
per-epoch metrics at step = epoch, and one run named ``run`` with the resolved config (``config.yaml``) and the
final tables (``<name>.md``) as artifacts.

Options (``logger_options.mlflow``): ``tracking_uri`` (default: ``$MLFLOW_TRACKING_URI``, else the file store
``<run dir>/mlruns``) and ``experiment`` (default: the run directory's name). Jobs in worker processes log
through the same tracking URI, each to its own MLflow run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from harness.api import Logger, LoggerSpec, config_text, hookimpl, require_extra


class MLflowLogger(Logger):
    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self._jobs: dict[str, str] = {}
        self._run: str | None = None

    def _new_run(self, name: str, tags: Mapping[str, str]) -> str:
        return self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags)).info.run_id

    def start_run(self, config: Mapping[str, Any]) -> None:
        self._run = self._new_run("run", {"sdbench.stage": "run"})
        self.client.log_text(self._run, config_text(config), "config.yaml")

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        if job not in self._jobs:
            self._jobs[job] = self._new_run(f"{stage} {job}", {"sdbench.stage": stage, "sdbench.job": job})
        for name, value in metrics.items():
            self.client.log_metric(self._jobs[job], name, value, step=epoch)

    def end_job(self, job: str, stage: str) -> None:
        run = self._jobs.pop(job, None)
        if run is not None:
            self.client.set_terminated(run)

    def log_table(self, name: str, table: str) -> None:
        self.client.log_text(self._run, table, f"{name}.md")

    def close(self) -> None:
        for run in self._jobs.values():
            self.client.set_terminated(run)
        self._jobs.clear()
        if self._run is not None:
            self.client.set_terminated(self._run)
            self._run = None


def make_mlflow(run_dir: Path, options: Mapping[str, Any]) -> Logger:
    require_extra("mlflow", "mlflow", "mlflow", kind="logger")
    uri = (options.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
           or (run_dir / "mlruns").resolve().as_uri())
    return MLflowLogger(uri, str(options.get("experiment", run_dir.resolve().name)))


@hookimpl
def sdbench_loggers() -> list[LoggerSpec]:
    return [LoggerSpec("mlflow", "MLflow runs per job (needs sdbench[mlflow])", make_mlflow)]
