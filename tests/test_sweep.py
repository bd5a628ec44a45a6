"""``bench sweep``: one student per teacher epoch, the figure and its CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.sweep import COLUMNS

CONFIG = """
image_size: 32
teacher: {epochs: 4, batch_size: 32}
student: {epochs: 1, batch_size: 32}
dataset_options:
  demo-triplets: {num_videos: 6}
strategy_params: {iee: {epochs: [2, 3]}}
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("sweep")
    config = directory / "config.yaml"
    config.write_text(CONFIG)
    out = directory / "run"
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--config", str(config), "--out", str(out),
                 "--quiet"]) == 0
    return out, "demo-triplets-default-tiny-seed1"


def test_sweep_writes_the_figure_and_its_csv(swept: tuple[Path, str]) -> None:
    out, name = swept
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    assert list(table.columns) == COLUMNS
    assert table["epoch"].tolist() == [1, 2, 3, 4]
    assert (table["seed"] == 1).all() and (table["metric"] == "mAP").all()
    assert table[["teacher_val", "student_test", "student_val", "fit_confidence", "ece"]].apply(
        lambda c: c.between(0, 1)).all().all()
    assert (out / "sweep" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "sweep" / f"{name}.svg").read_bytes()[:400]


def test_marked_teachers_and_window_agree_with_the_data(swept: tuple[Path, str]) -> None:
    out, name = swept
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    assert table["best_val"].sum() == 1 and table["best_teacher"].sum() == 1
    best_val = table.loc[table["best_val"], "epoch"].item()
    assert best_val == table.loc[table["teacher_val"] == table["teacher_val"].max(), "epoch"].min()
    assert table.loc[table["best_teacher"], "student_test"].item() == table["student_test"].max()
    assert table.loc[table["in_window"], "epoch"].tolist() == [2, 3]


def test_sweep_students_are_run_jobs_and_a_second_sweep_trains_nothing(swept: tuple[Path, str],
                                                                       capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    assert len(list((out / "jobs" / "teacher").iterdir())) == 1
    assert len([p for p in (out / "jobs" / "student").iterdir() if not p.name.startswith(".")]) == 4
    config = out.parent / "config.yaml"
    capsys.readouterr()
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--config", str(config), "--out", str(out)]) == 0
    assert "teacher demo-triplets" not in capsys.readouterr().err


def test_sweep_of_an_unknown_split_names_the_available_ones(swept: tuple[Path, str],
                                                            capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    assert main(["sweep", "--dataset", "demo-triplets", "--split", "nope", "--out", str(out),
                 "--config", str(out.parent / "config.yaml")]) == 2
    assert "has no split 'nope'; it has default" in capsys.readouterr().err
