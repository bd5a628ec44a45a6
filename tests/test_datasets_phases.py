"""Cholec80 and AutoLaparo: synthesized look-alikes read back, splits, length mismatches, check() and a tiny run."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.data.dataset import VideoFileFrames
from harness.errors import ConfigError
from plugins.datasets.autolaparo import AutoLaparo
from plugins.datasets.cholec80 import PHASES, Cholec80


@pytest.fixture
def cholec80_root(synthesized) -> Path:
    return synthesized(Cholec80)


@pytest.fixture
def autolaparo_root(synthesized) -> Path:
    return synthesized(AutoLaparo)


@pytest.fixture
def cholec80_copy(cholec80_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cholec80_root, tmp_path / "copy"))


def names(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"video{n:02d}" for n in range(first, last + 1))


@pytest.mark.parametrize("protocol, train, val, test", [
    ("40/8/32", names(1, 40), names(41, 48), names(49, 80)),
    ("32/8/40", names(1, 32), names(33, 40), names(41, 80)),
    ("40/40", names(1, 32), names(33, 40), names(41, 80)),
])
def test_cholec80_splits(cholec80_root: Path, protocol: str, train: tuple, val: tuple, test: tuple) -> None:
    (split,) = Cholec80({"root": str(cholec80_root), "split": protocol}).splits()
    assert (split.name, split.train, split.val, split.test) == (protocol, train, val, test)


def test_cholec80_default_split_is_40_8_32(cholec80_root: Path) -> None:
    (split,) = Cholec80({"root": str(cholec80_root)}).splits()
    assert split.val == ("video41", "video42", "video43", "video44", "video45", "video46", "video47", "video48")


def test_cholec80_rejects_unknown_options_and_splits() -> None:
    with pytest.raises(ConfigError, match="colour"):
        Cholec80({"colour": "red"})
    with pytest.raises(ConfigError, match="50/30"):
        Cholec80({"split": "50/30"})


def test_availability_without_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SDBENCH_CHOLEC80_ROOT", raising=False)
    monkeypatch.delenv("SDBENCH_AUTOLAPARO_ROOT", raising=False)
    assert "SDBENCH_CHOLEC80_ROOT" in Cholec80({}).availability()
    assert "SDBENCH_AUTOLAPARO_ROOT" in AutoLaparo({}).availability()
    monkeypatch.setenv("SDBENCH_CHOLEC80_ROOT", str(tmp_path))
    assert Cholec80({}).availability() is None


def test_cholec80_index_reads_every_video_at_1_fps(cholec80_root: Path) -> None:
    index = Cholec80({"root": str(cholec80_root)}).index()
    assert list(index.videos) == list(names(1, 80)) and index.class_names == PHASES
    video = index.videos["video01"]
    assert 4 <= len(video) <= 6 and video.labels[0] == 0 and video.labels.dtype == np.int64
    assert video.source == VideoFileFrames(str(cholec80_root / "videos" / "video01.mp4"), 1.0)


def test_labels_beyond_the_video_are_dropped_and_reported(cholec80_copy: Path, caplog: pytest.LogCaptureFixture):
    annotation = cholec80_copy / "phase_annotations" / "video07-phase.txt"
    lines = annotation.read_text().splitlines()
    extra = [f"{len(lines) - 1 + i}\tGallbladderRetraction" for i in range(50)]  # two more seconds
    annotation.write_text("\n".join(lines + extra) + "\n")
    dataset = Cholec80({"root": str(cholec80_copy)})
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        index = dataset.index()
    expected = (len(lines) - 1) // 25
    assert len(index.videos["video07"]) == expected
    (message,) = [r.getMessage() for r in caplog.records if "video07" in r.getMessage()]
    assert f"2 of {expected + 2} labelled frames" in message and "video07.mp4" in message
    (problem,) = dataset.check()
    assert "video07" in problem and f"{expected + 2} frames labelled" in problem and f"holds {expected} by its container metadata" in problem


def test_check_of_the_clean_look_alike_is_empty(cholec80_root: Path) -> None:
    assert Cholec80({"root": str(cholec80_root)}).check() == []


def test_check_reports_every_problem(cholec80_copy: Path) -> None:
    annotations, videos = cholec80_copy / "phase_annotations", cholec80_copy / "videos"
    text = (annotations / "video03-phase.txt").read_text()
    (annotations / "video03-phase.txt").write_text(text.replace("3\tPreparation", "3\tCoffeeBreak", 1))
    (annotations / "video04-phase.txt").write_text("Frame Label\n" + text.split("\n", 1)[1])
    (annotations / "video05-phase.txt").write_text(text.replace("2\tPreparation", "7\tPreparation", 1))
    data = (videos / "video06.mp4").read_bytes()
    (videos / "video06.mp4").write_bytes(data[:len(data) // 2])
    (videos / "video45.mp4").unlink()
    (annotations / "video45-phase.txt").unlink()
    (videos / "video46.mp4").unlink()
    problems = "\n".join(Cholec80({"root": str(cholec80_copy)}).check())
    assert "video03-phase.txt, line 5: unknown phase 'CoffeeBreak'; known phases: Preparation, Calot" in problems
    assert "video04-phase.txt, line 1: expected the header 'Frame<TAB>Phase', found 'Frame Label'" in problems
    assert "video05-phase.txt, line 4: expected frame 2, found 7" in problems
    assert "video06.mp4: cannot" in problems and "video video06" in problems
    assert "video video45 of the splits is absent" in problems
    assert "video file " in problems and "video46.mp4 of video46 is missing" in problems


def test_evaluate_returns_strict_and_relaxed_scores(cholec80_root: Path) -> None:
    labels = np.repeat(np.arange(7), 3)  # every phase present: relaxed recall is a plain mean over phases
    probs = np.eye(7)[labels]
    scores = Cholec80({"root": str(cholec80_root)}).evaluate(labels, probs, np.zeros(len(labels), dtype=int))
    for metric in ("accuracy", "precision", "recall", "jaccard", "f1"):
        assert scores[metric] == pytest.approx(1.0) and scores[f"relaxed_{metric}"] == pytest.approx(1.0)


def test_autolaparo_index_splits_and_check(autolaparo_root: Path) -> None:
    dataset = AutoLaparo({"root": str(autolaparo_root)})
    index = dataset.index()
    assert list(index.videos) == [f"{n:02d}" for n in range(1, 22)] and len(index.class_names) == 7
    (split,) = dataset.splits()
    assert split.train == tuple(f"{n:02d}" for n in range(1, 11))
    assert split.val == ("11", "12", "13", "14")
    assert split.test == ("15", "16", "17", "18", "19", "20", "21")
    first = (autolaparo_root / "labels" / "label_01.txt").read_text().splitlines()[1]
    assert index.videos["01"].labels[0] == int(first.split()[1]) - 1
    assert dataset.check() == []
    assert {"accuracy", "relaxed_accuracy", "relaxed_f1"} <= set(dataset.evaluate(
        np.array([0, 1]), np.eye(7)[[0, 1]], np.array([0, 0])))


def test_autolaparo_check_names_file_line_and_problem(autolaparo_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(autolaparo_root, tmp_path / "copy"))
    labels = root / "labels" / "label_02.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join(lines[:2] + ["2\t9"] + lines[3:]) + "\n")
    (root / "labels" / "label_03.txt").write_text("\n".join(lines[1:]) + "\n")
    problems = "\n".join(AutoLaparo({"root": str(root)}).check())
    assert "label_02.txt, line 3: unknown phase '9'; known phases: 1 (Preparation)" in problems
    assert "label_03.txt, line 1: expected a header line" in problems


TINY = """
image_size: 32
teacher: {{epochs: 2, batch_size: 32}}
student: {{epochs: 1, batch_size: 32}}
dataset_options:
  cholec80: {{root: "{cholec80}"}}
  autolaparo: {{root: "{autolaparo}"}}
"""


def test_tiny_run_through_the_cli(cholec80_root: Path, autolaparo_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(cholec80=cholec80_root, autolaparo=autolaparo_root))
    out = tmp_path / "run"
    assert main(["run", "--datasets", "cholec80,autolaparo", "--strategies", "hard,iee", "--seeds", "0",
                 "--config", str(config), "--out", str(out), "--quiet"]) == 0
    results = pd.read_csv(out / "results.csv")
    primary = results[results["primary"]]
    assert set(primary["dataset"]) == {"cholec80", "autolaparo"}
    assert set(primary["strategy"]) == {"hard", "iee"}
