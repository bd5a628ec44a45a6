"""SARAS-ESAD: the synthesized look-alike read back as frame-level multi-labels, splits, check() and a tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError, DataError
from plugins.datasets.esad import CLASSES, Esad


@pytest.fixture
def esad_root(synthesized) -> Path:
    return synthesized(Esad)


@pytest.fixture
def esad_copy(esad_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(esad_root, tmp_path / "copy"))


def test_index_derives_frame_labels_from_boxes(esad_root: Path) -> None:
    index = Esad({"root": str(esad_root)}).index()
    assert index.class_names == CLASSES and index.task == "multilabel"
    assert list(index.videos) == ["RARP1", "RARP2", "RARP3", "RARP4", "RARP5"]
    video = index.videos["RARP1"]
    assert video.frame_ids.tolist() == [5, 10, 15, 20, 25, 30]
    for frame, path, row in zip(video.frame_ids, video.source.paths, video.labels):
        assert path.endswith(f"train/set1/RARP1_frame_{frame}.jpg")
        boxes = Path(path).with_suffix(".txt").read_text().split("\n")
        assert set(np.flatnonzero(row)) == {int(line.split()[0]) for line in boxes if line}
    assert video.labels.shape == (6, 21) and video.labels.dtype == np.uint8


def test_unlabeled_frames_are_negatives_or_dropped(esad_root: Path) -> None:
    negative = Esad({"root": str(esad_root)}).index()
    dropped = Esad({"root": str(esad_root), "unlabeled": "drop"}).index()
    empty = sum(int((~v.labels.any(axis=1)).sum()) for v in negative.videos.values())
    assert empty > 0
    assert sum(len(v) for v in dropped.videos.values()) == sum(len(v) for v in negative.videos.values()) - empty
    assert all(v.labels.any(axis=1).all() for v in dropped.videos.values())


def test_split_validates_on_the_last_training_video_and_tests_on_official_val(esad_root: Path) -> None:
    (split,) = Esad({"root": str(esad_root)}).splits()
    assert (split.train, split.val, split.test) == (("RARP1", "RARP2", "RARP3"), ("RARP4",), ("RARP5",))


def test_test_split_needs_test_labels(esad_root: Path) -> None:
    with pytest.raises(DataError, match="test/obj holds no label files"):
        Esad({"root": str(esad_root), "test_split": "test"}).splits()
    with pytest.raises(ConfigError, match="unlabeled"):
        Esad({"unlabeled": "maybe"})
    with pytest.raises(ConfigError, match="colour"):
        Esad({"colour": 1})


def test_duplicate_video_names_are_made_unique_by_folder(esad_copy: Path) -> None:
    for path in (esad_copy / "train" / "set2").glob("RARP3_*"):
        path.rename(path.with_name(path.name.replace("RARP3", "RARP1")))
    videos = list(Esad({"root": str(esad_copy)}).index().videos)
    assert videos == ["RARP1-set1", "RARP2", "RARP1-set2", "RARP4", "RARP5"]


def test_availability_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SDBENCH_ESAD_ROOT", raising=False)
    assert "SDBENCH_ESAD_ROOT" in Esad({}).availability()


def test_check_reports_bad_class_malformed_line_and_orphan_label(esad_root: Path, esad_copy: Path) -> None:
    assert Esad({"root": str(esad_root)}).check() == []
    folder = esad_copy / "train" / "set1"
    (folder / "RARP1_frame_5.txt").write_text("3 0.5 0.5 0.1 0.1\n21 0.5 0.5 0.1 0.1\n")
    (folder / "RARP2_frame_10.txt").write_text("4 0.5 0.5\n")
    (folder / "RARP2_frame_999.txt").write_text("4 0.5 0.5 0.1 0.1\n")
    (folder / "RARP2_frame_15.txt").unlink()  # an image without labels is fine
    problems = "\n".join(Esad({"root": str(esad_copy)}).check())
    assert "RARP1_frame_5.txt, line 2: class index 21 is out of range 0-20" in problems
    assert "RARP2_frame_10.txt, line 1: expected 'class xc yc w h', found '4 0.5 0.5'" in problems
    assert f"video RARP2 in {folder}: 1 label file without an image file (first: RARP2_frame_999.txt)" in problems
    assert "RARP2_frame_15" not in problems
    with pytest.raises(DataError, match="out of range"):
        Esad({"root": str(esad_copy)}).index()


def test_evaluate_returns_frame_and_video_map(esad_root: Path) -> None:
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = Esad({"root": str(esad_root)}).evaluate(labels, labels * 0.9, np.array([0, 0, 1, 1]))
    assert scores == {"mAP": pytest.approx(1.0), "video_mAP": pytest.approx(1.0)}


def test_tiny_run_through_the_cli(esad_root: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text("image_size: 32\nteacher: {epochs: 2, batch_size: 32}\nstudent: {epochs: 1, batch_size: 32}\n"
                      f"dataset_options:\n  esad: {{root: \"{esad_root}\"}}\n")
    out = tmp_path / "run"
    assert main(["run", "--datasets", "esad", "--strategies", "hard,iee", "--seeds", "0", "--config", str(config),
                 "--out", str(out), "--quiet"]) == 0
    primary = pd.read_csv(out / "results.csv").query("primary")
    assert set(primary["dataset"]) == {"esad"} and set(primary["strategy"]) == {"hard", "iee"}
