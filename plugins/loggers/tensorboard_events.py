"""TensorBoard: event files under ``<run dir>/tensorboard`` (``logger_options.tensorboard.dir`` elsewhere).

Every job writes its own directory, ``<stage>/<job key>``, from the process that trains it, so concurrent
workers never share a writer: per epoch ``loss`` and, for teachers, ``val/<metric>`` and
``diagnostics/<name>``, at step = epoch. The run-level directory ``run`` holds the resolved config and the
final tables as text. ``tensorboard --logdir <run dir>/tensorboard`` shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from harness.api import Logger, LoggerSpec, config_text, hookimpl


class TensorBoardLogger(Logger):
    def __init__(self, root: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.root = root
        self._new_writer = SummaryWriter
        self._jobs: dict[str, Any] = {}
        self._run: Any = None

    def start_run(self, config: Mapping[str, Any]) -> None:
        self._run = self._new_writer(str(self.root / "run"))
        self._run.add_text("config", _code(config_text(config)))
        self._run.flush()

    def log_epoch(self, job: str, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
        if job not in self._jobs:
            self._jobs[job] = self._new_writer(str(self.root / stage / job))
        writer = self._jobs[job]
        for name, value in metrics.items():
            writer.add_scalar(name, value, epoch)
        writer.flush()  # a killed job keeps the epochs it logged

    def end_job(self, job: str, stage: str) -> None:
        writer = self._jobs.pop(job, None)
        if writer is not None:
            writer.close()

    def log_table(self, name: str, table: str) -> None:
        self._run.add_text(name, table)
        self._run.flush()

    def close(self) -> None:
        for writer in self._jobs.values():
            writer.close()
        self._jobs.clear()
        if self._run is not None:
            self._run.close()
            self._run = None


def _code(text: str) -> str:
    """``text`` as a Markdown code block (TensorBoard renders text as Markdown)."""
    return "".join(f"    {line}\n" for line in text.splitlines())


def make_tensorboard(run_dir: Path, options: Mapping[str, Any]) -> Logger:
    return TensorBoardLogger(Path(options.get("dir", run_dir / "tensorboard")))


@hookimpl
def sdbench_loggers() -> list[LoggerSpec]:
    return [LoggerSpec("tensorboard", "TensorBoard event files in <run dir>/tensorboard, one directory per job",
                       make_tensorboard)]
