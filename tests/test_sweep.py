"""``bench sweep``: K students per teacher epoch, the figure and its CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.report.regret import registered_rules
from harness.science.selection import best_val_epoch
from harness.science.sweep import COLUMNS, columns, parse_epochs, seed_columns, student_seed
from harness.train.history import TeacherHistory

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
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--student-seeds", "2", "--config", str(config),
                 "--out", str(out), "--quiet"]) == 0
    return out, "demo-triplets-default-tiny-seed1"


def student_dirs(out: Path) -> list[Path]:
    return [p for p in (out / "jobs" / "student").iterdir() if not p.name.startswith(".")]


def test_student_seeds_keep_the_teacher_seed_first_then_step_by_1000() -> None:
    assert [student_seed(1, k) for k in range(3)] == [1, 1001, 2001]
    assert columns([1, 1001])[len(COLUMNS):] == ["student_val_seed1", "student_val_seed1001", "student_test_seed1",
                                                 "student_test_seed1001"]


def test_epoch_lists_and_ranges() -> None:
    assert parse_epochs("2,4,6") == (2, 4, 6)
    assert parse_epochs("1-10:2") == (1, 3, 5, 7, 9)
    assert parse_epochs("8, 1-3") == (1, 2, 3, 8)
    for bad in ("x", "3-1", "0", "1-4:0", ""):
        with pytest.raises(ConfigError, match="--epochs"):
            parse_epochs(bad)


def test_sweep_writes_the_figure_and_its_csv(swept: tuple[Path, str]) -> None:
    out, name = swept
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    assert list(table.columns) == columns([1, 1001])
    assert table["epoch"].tolist() == [1, 2, 3, 4]
    assert (table["seed"] == 1).all() and (table["metric"] == "mAP").all() and (table["students"] == 2).all()
    assert table["teacher_key"].nunique() == 1
    assert (out / "jobs" / "teacher" / table["teacher_key"].iloc[0] / "history" / "history.json").is_file()
    assert table[["teacher_val", "student_test", "student_val", "fit_confidence", "ece"]].apply(
        lambda c: c.between(0, 1)).all().all()
    assert (out / "sweep" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out / "sweep" / f"{name}.svg").read_bytes()[:400]


def test_mean_and_std_are_those_of_the_seed_columns(swept: tuple[Path, str]) -> None:
    out, name = swept
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    for part in ("val", "test"):
        seeds = table[list(seed_columns(table, part).values())]
        assert list(seed_columns(table, part)) == [1, 1001]
        np.testing.assert_allclose(table[f"student_{part}"], seeds.mean(axis=1), rtol=1e-5)
        np.testing.assert_allclose(table[f"student_{part}_std"], seeds.std(axis=1, ddof=1), rtol=1e-4, atol=1e-6)
    # the second student really trained with its own seed
    assert not np.allclose(table["student_test_seed1"], table["student_test_seed1001"])


def test_marked_teachers_and_window_agree_with_the_data(swept: tuple[Path, str]) -> None:
    out, name = swept
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    assert table["best_val"].sum() == 1 and table["best_teacher"].sum() == 1
    best_val = table.loc[table["best_val"], "epoch"].item()
    assert best_val == table.loc[table["teacher_val"] == table["teacher_val"].max(), "epoch"].min()
    assert table.loc[table["best_teacher"], "student_test"].item() == table["student_test"].max()
    assert table.loc[table["last"], "epoch"].tolist() == [4]
    assert table.loc[table["in_window"], "epoch"].tolist() == [2, 3]


def test_sweep_students_are_run_jobs_and_a_second_sweep_trains_nothing(swept: tuple[Path, str],
                                                                       capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    assert len([p for p in (out / "jobs" / "teacher").iterdir() if not p.name.startswith(".")]) == 1
    students = student_dirs(out)
    assert len(students) == 8
    seeds = sorted(json.loads((p / "done.json").read_text())["job"]["job"]["seed"] for p in students)
    assert seeds == [1] * 4 + [1001] * 4
    config = out.parent / "config.yaml"
    capsys.readouterr()
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--student-seeds", "2", "--config", str(config),
                 "--out", str(out)]) == 0
    assert "teacher demo-triplets" not in capsys.readouterr().err


def test_sweep_of_an_unknown_split_or_epoch_names_the_available_ones(swept: tuple[Path, str],
                                                                     capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    config = str(out.parent / "config.yaml")
    assert main(["sweep", "--dataset", "demo-triplets", "--split", "nope", "--out", str(out), "--config", config]) == 2
    assert "has no split 'nope'; it has default" in capsys.readouterr().err
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--epochs", "9", "--out", str(out),
                 "--config", config]) == 2
    assert "[9] are not epochs of the teacher (it has epochs [1, 2, 3, 4])" in capsys.readouterr().err
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--seeds", "1,2", "--out", str(out),
                 "--config", config]) == 2
    assert "--seed or --seeds" in capsys.readouterr().err


def test_an_epoch_subset_keeps_best_val_and_last_and_reuses_student_zero(swept: tuple[Path, str],
                                                                         capsys: pytest.CaptureFixture) -> None:
    out, name = swept
    full = pd.read_csv(out / "sweep" / f"{name}.csv")
    best_val = full.loc[full["best_val"], "epoch"].item()
    capsys.readouterr()
    assert main(["sweep", "--dataset", "demo-triplets", "--seeds", "1", "--epochs", "2", "--student-seeds", "1",
                 "--config", str(out.parent / "config.yaml"), "--out", str(out)]) == 0
    assert "student demo-triplets" not in capsys.readouterr().err  # student 0 of every epoch is already trained
    assert len(student_dirs(out)) == 8
    table = pd.read_csv(out / "sweep" / f"{name}.csv")
    assert list(table.columns) == columns([1])
    history = TeacherHistory(out / "jobs" / "teacher" / table["teacher_key"].iloc[0] / "history")
    picked = {best_val_epoch(history, rule.window(history)) for rule in registered_rules().values()}
    assert table["epoch"].tolist() == sorted({2, best_val, 4} | picked)
    assert table["best_val"].sum() == 1 and table.loc[table["last"], "epoch"].tolist() == [4]
    assert (table["student_test_std"] == 0).all()
    np.testing.assert_allclose(table["student_test"], table["student_test_seed1"])
    np.testing.assert_allclose(table["student_test"], full.set_index("epoch").loc[table["epoch"], "student_test_seed1"],
                               rtol=1e-5)
    assert (out / "sweep" / f"{name}.png").is_file()


def test_an_epoch_subset_always_keeps_what_the_baselines_and_rules_pick(tmp_path: Path):
    from harness.kits.conformance import synthetic_teachers
    from harness.science.selection import best_val_epoch, window_rule
    from harness.science.sweep import swept_epochs

    history = synthetic_teachers(tmp_path, "multiclass", (0,))[0]
    rule = window_rule({"name": "epochs", "epochs": [3, 6]})
    chosen = best_val_epoch(history, [3, 6])
    assert swept_epochs(history, [1], [rule]) == sorted({1, chosen, best_val_epoch(history), 8})
    assert swept_epochs(history, None, [rule]) == list(range(1, 9))


def test_epoch_errors_name_the_whole_value_and_what_is_expected() -> None:
    with pytest.raises(ConfigError, match=r"--epochs '2,,4': cannot read ''; expected"):
        parse_epochs("2,,4")
    with pytest.raises(ConfigError, match=r"--epochs '1-4:0': '1-4:0' .*STEP >= 1"):
        parse_epochs("1-4:0")
    with pytest.raises(ConfigError, match=r"--epochs '5-2': '5-2' .*START <= END"):
        parse_epochs("5-2")


class Failing:
    """A window rule that cannot choose from any history."""

    def window(self, history: TeacherHistory) -> list[int]:
        raise ValueError("no window here")


def test_an_epoch_subset_skips_a_rule_that_cannot_choose(tmp_path: Path) -> None:
    from harness.kits.conformance import synthetic_teachers
    from harness.science.sweep import swept_epochs

    history = synthetic_teachers(tmp_path, "multiclass", (0,))[0]
    assert swept_epochs(history, [1], [Failing()]) == sorted({1, best_val_epoch(history), 8})


def test_a_sweep_window_that_cannot_choose_fails_before_training(swept: tuple[Path, str],
                                                                 capsys: pytest.CaptureFixture) -> None:
    out, _ = swept
    config = out.parent / "bad-window.yaml"
    config.write_text(CONFIG.replace("epochs: [2, 3]", "epochs: [2, 9]"))
    before = len(student_dirs(out))
    assert main(["sweep", "--dataset", "demo-triplets", "--seed", "1", "--student-seeds", "3", "--config",
                 str(config), "--out", str(out), "--quiet"]) == 2
    assert "window" in capsys.readouterr().err and len(student_dirs(out)) == before
