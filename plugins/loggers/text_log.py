"""The plain-text log: every progress line of a run is in ``<run dir>/log.txt`` anyway; this logger adds every
epoch's metrics (all of them, where progress lines show the primary one), the resolved config and the final
tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.api import Logger, LoggerSpec, config_text, hookimpl
from harness.system.progress import LOG_FILE, append_log


class TextLogger(Logger):
    def __init__(self, path: Path) -> None:
        self.path = path

    def start_run(self, config: Mapping[str, Any]) -> None:
        append_log(self.path, "config:\n" + config_text(config).rstrip("\n"))

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        values = ", ".join(f"{name} {value:.6g}" for name, value in metrics.items())
        append_log(self.path, f"{stage} {job} epoch {epoch}: {values}")

    def log_table(self, name: str, table: str) -> None:
        append_log(self.path, f"{name}:\n{table.rstrip()}")


def make_text(run_dir: Path, options: Mapping[str, Any]) -> Logger:
    return TextLogger(run_dir / LOG_FILE)


@hookimpl
def sdbench_loggers() -> list[LoggerSpec]:
    return [LoggerSpec("text", f"every epoch's metrics, the config and the tables in <run dir>/{LOG_FILE}",
                       make_text)]
