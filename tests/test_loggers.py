"""Experiment loggers: TensorBoard event files per job, the plain-text log, a failing logger never fails the run,
unknown names and missing extras fail before it starts."""

from __future__ import annotations

import importlib.util
import io
import logging
import re
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.hooks import registry as plugins
from harness.hooks.registry import BUILTIN_PLUGINS, Registry
from harness.runs.loggers import Logger, LoggerGroup, build_loggers
from harness.system.progress import Progress

PLAN = """
datasets: [demo-phases]
strategies: [hard]
seeds: [0]
image_size: 16
teacher: {epochs: 2, batch_size: 32}
student: {epochs: 1, batch_size: 32}
dataset_options:
  demo-phases: {num_videos: 5}
"""
BOOM = """
    from harness.api import Logger, LoggerSpec, hookimpl

    class Boom(Logger):
        def log_epoch(self, job, stage, epoch, metrics):
            raise RuntimeError("tracker unreachable")

    @hookimpl
    def sdbench_loggers():
        return [LoggerSpec("boom", "raises on every epoch", lambda run_dir, options: Boom())]
"""


def scalars(directory: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def text_tags(directory: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return events.Tags()["tensors"]


def finished(run_dir: Path, stage: str) -> list[Path]:
    """The finished job directories of ``stage`` (not their work directories or lock files)."""
    return [p for p in (run_dir / "jobs" / stage).iterdir() if p.is_dir() and not p.name.startswith(".")]


def test_a_run_with_loggers_writes_event_files_per_job_and_the_text_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "boom_logger.py").write_text(textwrap.dedent(BOOM))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_registry", Registry(builtins=BUILTIN_PLUGINS + ("boom_logger",), entry_points=False))
    config, out = tmp_path / "plan.yaml", tmp_path / "run"
    config.write_text(PLAN)
    command = ["run", "--config", str(config), "--out", str(out), "--device", "cpu", "--quiet"]
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        assert main(command + ["--logger", "tensorboard", "--logger", "boom", "--logger", "text"]) == 0

    [warning] = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert "logger 'boom' failed and is disabled" in warning and "tracker unreachable" in warning
    [teacher], [student] = (finished(out, stage) for stage in ("teacher", "student"))
    board = out / "tensorboard"
    assert [step for step, _ in scalars(board / "teacher" / teacher.name, "loss")] == [1, 2]
    assert [step for step, _ in scalars(board / "teacher" / teacher.name, "val/accuracy")] == [1, 2]
    for name in ("fit_confidence", "mean_max_prob", "mean_entropy", "ece"):
        assert len(scalars(board / "teacher" / teacher.name, f"diagnostics/{name}")) == 2
    [(step, loss)] = scalars(board / "student" / student.name, "loss")
    assert step == 1 and loss > 0
    assert {"config/text_summary", "comparison/text_summary"} <= set(text_tags(board / "run"))

    log = (out / "log.txt").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\d+\] trained 1 teacher\(s\) and 1 student\(s\)", log, re.M)
    assert f"teacher {teacher.name} epoch 2: loss " in log and "diagnostics/ece " in log  # the text logger
    assert "comparison:\n" in log

    assert main(command) == 0  # a rerun finds everything complete, and appends to the same log
    log = (out / "log.txt").read_text()
    assert "trained 1 teacher(s) and 1 student(s)" in log and "trained 0 teacher(s) and 0 student(s)" in log


class Recorder(Logger):
    def __init__(self) -> None:
        self.epochs: list[int] = []
        self.closed = False

    def log_epoch(self, job, stage, epoch, metrics) -> None:
        self.epochs.append(epoch)

    def close(self) -> None:
        self.closed = True


class Failing(Logger):
    def __init__(self) -> None:
        self.calls = 0

    def log_epoch(self, job, stage, epoch, metrics) -> None:
        self.calls += 1
        raise OSError("disk full")


def test_a_failing_logger_is_reported_once_and_disabled_while_the_others_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    good, bad = Recorder(), Failing()
    group = LoggerGroup({"bad": bad, "good": good})
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        for epoch in (1, 2, 3):
            group.log_epoch("k", "teacher", epoch, {"loss": 1.0})
        group.close()
    assert bad.calls == 1 and good.epochs == [1, 2, 3] and good.closed
    [warning] = caplog.records
    assert "logger 'bad' failed" in warning.getMessage() and "OSError: disk full" in warning.getMessage()


def test_unknown_logger_name_fails_the_run_before_it_starts_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--datasets", "demo-phases", "--out", str(tmp_path), "--logger", "tensorbord"]) == 2
    assert "unknown logger 'tensorbord'; did you mean 'tensorboard'?" in capsys.readouterr().err
    assert not (tmp_path / "jobs").exists()


@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_a_missing_extra_names_the_install_command(name: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None if module == name else real(module, *a))
    with pytest.raises(ConfigError, match=rf"logger '{name}' needs the optional package '{name}'.*"
                                          rf"pip install 'sdbench\[{name}\]'"):
        build_loggers(Registry(entry_points=False), [name], {}, tmp_path)
    # in a worker process the same failure only costs that logger
    assert build_loggers(Registry(entry_points=False), [name], {}, tmp_path, strict=False).loggers == {}


def test_plugins_lists_the_loggers(capsys: pytest.CaptureFixture) -> None:
    assert main(["plugins"]) == 0
    listed = {tuple(line.split()[:2]) for line in capsys.readouterr().out.splitlines()}
    assert {("logger", "tensorboard"), ("logger", "text"), ("logger", "mlflow"), ("logger", "wandb")} <= listed


def test_a_log_that_cannot_be_written_is_given_up_with_one_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    progress = Progress(stream, log_path=tmp_path)  # a directory: every write to it fails
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        progress.line("first")
        progress.line("second")
    assert stream.getvalue() == "first\nsecond\n"
    [warning] = caplog.records
    assert f"cannot write the run's log {tmp_path}" in warning.getMessage()
