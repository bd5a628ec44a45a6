"""Experiment loggers: per-epoch metrics, the resolved config and the final tables, sent to trackers.

A logger is a plugin (``sdbench_loggers`` hook, :class:`~harness.hooks.specs.LoggerSpec`) named in the config's
``loggers`` (or ``--logger``); built in: ``tensorboard``, ``text``, and, as optional extras, ``mlflow`` and
``wandb``. The runner calls, in the process that runs ``bench run`` or ``bench sweep``::

    start_run(config)                      once, before any job
    log_table(name, markdown)              for each final table
    close()                                at the end, also when the run fails

and, in whichever process trains a job (a worker process of the local, Ray or SLURM executor builds its own
loggers from the run's config)::

    log_epoch(job, stage, epoch, metrics)  after every epoch of a teacher or student job
    end_job(job, stage)                    when the job ends, finished or not

``job`` is the job's key (its directory is ``jobs/<stage>/<job>``). Since jobs run in several processes at
once, a logger writes each job's epochs apart from the others' (TensorBoard: one event directory per job).

Loggers never break a run: an exception inside one is reported once as a warning (naming the logger and the
error) and that logger is disabled for the rest of the process. Only building the loggers before the run
starts may fail it: an unknown name, or a missing optional package (``pip install 'sdbench[mlflow]'``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from harness.hooks.registry import Registry

log = logging.getLogger("sdbench")


class Logger:
    """The logger API; every method does nothing by default, so a logger implements only what it records."""

    def start_run(self, config: Mapping[str, Any]) -> None:
        """The run starts, with its resolved configuration (``RunConfig.to_dict``)."""

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Job ``job`` of ``stage`` (teacher or student) finished ``epoch`` (1-based) with ``metrics``: ``loss``
        for every job; for teachers also ``val/<metric>`` and ``diagnostics/<name>`` (fit confidence on the
        training frames, mean max-probability, entropy and ECE on the validation frames)."""

    def end_job(self, job: str, stage: str) -> None:
        """Job ``job`` ended (finished, failed or interrupted): nothing more is logged for it here."""

    def log_table(self, name: str, table: str) -> None:
        """A final table of the run, as Markdown."""

    def close(self) -> None:
        """The run ended: flush and release everything."""


class LoggerGroup(Logger):
    """Several loggers called as one. A logger that raises is reported once and disabled."""

    def __init__(self, loggers: Mapping[str, Logger]) -> None:
        self.loggers = dict(loggers)

    def __bool__(self) -> bool:
        """Whether any logger listens (what only loggers need is computed only then)."""
        return bool(self.loggers)

    def _each(self, call: Callable[[Logger], None]) -> None:
        for name, logger in list(self.loggers.items()):
            try:
                call(logger)
            except Exception as exc:  # noqa: BLE001 - a failing logger must never fail the run
                del self.loggers[name]
                log.warning(f"logger '{name}' failed and is disabled for the rest of this run: "
                            f"{type(exc).__name__}: {exc}")

    def start_run(self, config: Mapping[str, Any]) -> None:
        self._each(lambda logger: logger.start_run(config))

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self._each(lambda logger: logger.log_epoch(job, stage, epoch, metrics))

    def end_job(self, job: str, stage: str) -> None:
        self._each(lambda logger: logger.end_job(job, stage))

    def log_table(self, name: str, table: str) -> None:
        self._each(lambda logger: logger.log_table(name, table))

    def close(self) -> None:
        self._each(lambda logger: logger.close())


def build_loggers(registry: Registry, names: Iterable[str], options: Mapping[str, Mapping[str, Any]], run_dir: Path,
                  strict: bool = True) -> LoggerGroup:
    """The loggers ``names`` of the run at ``run_dir``. ``strict``: an unknown name or a failing factory raises
    (before a run starts); otherwise it is reported and left out (in a worker process, where the same loggers
    were built once already by the process that started the run)."""
    loggers: dict[str, Logger] = {}
    for name in dict.fromkeys(names):
        try:
            loggers[name] = registry.get("logger", name).factory(Path(run_dir), options.get(name, {}))
        except Exception as exc:  # noqa: BLE001 - see strict
            if strict:
                raise
            log.warning(f"logger '{name}' could not be built and is disabled: {type(exc).__name__}: {exc}")
    return LoggerGroup(loggers)


def config_text(config: Mapping[str, Any]) -> str:
    """The resolved configuration as YAML, as loggers record it."""
    return yaml.safe_dump(_plain(config), sort_keys=False)


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists, which ``yaml.safe_dump`` refuses."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
