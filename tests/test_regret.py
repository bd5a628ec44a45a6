"""Regret against the oracle sweep: hand-built sweeps and histories, hand-computed regrets and intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.report.regret import write_regret, write_run_regret
from harness.report.results import write_results
from harness.science.regret import OVERALL, T_975, regret_table, summary, t_975, unit_regret
from harness.science.sweep import choices, columns
from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory

LABELS = np.array([[1, 0], [0, 1]], dtype=np.uint8)
SEEDS = [0, 1000]
# student test scores of seeds 0 and 1000 per teacher epoch: means .55 .65 .64 .45 -> the oracle is epoch 2
SCORES = {1: [0.50, 0.60], 2: [0.70, 0.60], 3: [0.62, 0.66], 4: [0.40, 0.50]}
VAL = [0.3, 0.5, 0.6, 0.55]  # best-val: epoch 3; last: epoch 4


class Fixed:
    """A window rule with a fixed window."""

    def __init__(self, *epochs: int) -> None:
        self.epochs = list(epochs)

    def window(self, history: TeacherHistory) -> list[int]:
        return self.epochs

    def describe(self) -> str:
        return f"epochs {self.epochs}"


def history(directory: Path, seed: int = 0, val: list[float] = VAL) -> TeacherHistory:
    writer = HistoryWriter(directory, seed, "multilabel", "mAP", LABELS, LABELS)
    for epoch, v in enumerate(val, start=1):
        probs = np.where(LABELS == 1, 0.5 + 0.1 * epoch, 0.5 - 0.1 * epoch).astype(np.float32)
        writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"mAP": v}), probs, probs)
    return TeacherHistory(directory)


def sweep_table(scores: dict[int, list[float]] = SCORES, seeds: list[int] = SEEDS, dataset: str = "d1",
                split: str = "s1", seed: int = 0, key: str = "teacher-key") -> pd.DataFrame:
    rows = []
    for epoch, values in scores.items():
        row = {"dataset": dataset, "split": split, "backbone": "tiny", "seed": seed, "teacher_key": key,
               "metric": "mAP", "epoch": epoch, "students": len(seeds),
               "student_test": np.mean(values),
               "student_test_std": np.std(values, ddof=1) if len(values) > 1 else 0.0}
        for s, v in zip(seeds, values):
            row[f"student_test_seed{s}"] = v
            row[f"student_val_seed{s}"] = v
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=columns(seeds))


def by_rule(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["rule"]: row for _, row in frame.iterrows()}


def test_choices_are_the_best_val_epoch_inside_each_window(tmp_path: Path):
    h = history(tmp_path / "h")
    assert choices(h, {"early": Fixed(1, 2), "late": Fixed(4)}) == {"early": 2, "late": 4, "best-val": 3, "last": 4}
    assert "failed" in choices(h, {"bad": Fixed(7)})["bad"]  # the history has no epoch 7


def test_regret_and_its_bootstrap_interval_over_student_seeds(tmp_path: Path):
    h = history(tmp_path / "h")
    table = sweep_table()
    rows = by_rule(unit_regret(table, choices(h, {"early": Fixed(1, 2)}), {"ensemble": {0: 0.68, 1000: 0.70}}))
    # Two seeds: a bootstrap draw is seeds (0, 0), (1000, 1000) or one of each (the plain means), each with
    # probability >= 1/4, so the 2.5% and 97.5% percentiles are the smallest and largest regret of the three.
    # (0, 0): means .50 .70 .62 .40, oracle .70;  (1000, 1000): .60 .60 .66 .50, oracle .66.
    expected = {"early": (2, 0.0, 0.0, 6.0), "best-val": (3, 1.0, 0.0, 8.0), "last": (4, 20.0, 16.0, 30.0)}
    for name, (epoch, regret, low, high) in expected.items():
        row = rows[name]
        assert row["epoch"] == epoch and row["oracle_epoch"] == 2 and row["missing"] == ""
        assert row["oracle"] == pytest.approx(65.0) and row["regret"] == pytest.approx(regret)
        assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert row["ci_low"] <= row["regret"] <= row["ci_high"]
    assert rows["early"]["kind"] == "rule" and rows["last"]["kind"] == "baseline"
    ensemble = rows["ensemble"]  # 69.0 on average: it beats every single teacher; paired draws: 2, -4, -4
    assert ensemble["kind"] == "strategy" and pd.isna(ensemble["epoch"])
    assert ensemble["regret"] == pytest.approx(-4.0)
    assert (ensemble["ci_low"], ensemble["ci_high"]) == (pytest.approx(-4.0), pytest.approx(2.0))
    again = unit_regret(table, choices(h, {"early": Fixed(1, 2)}), {"ensemble": {0: 0.68, 1000: 0.70}})
    pd.testing.assert_frame_equal(again, unit_regret(table, choices(h, {"early": Fixed(1, 2)}),
                                                     {"ensemble": {0: 0.68, 1000: 0.70}}))


def test_three_seeds_interval_contains_the_point_and_one_seed_is_a_point(tmp_path: Path):
    h = history(tmp_path / "h")
    scores = {1: [0.50, 0.60, 0.55], 2: [0.70, 0.60, 0.64], 3: [0.62, 0.66, 0.61], 4: [0.40, 0.50, 0.45]}
    rows = by_rule(unit_regret(sweep_table(scores, [0, 1000, 2000]), choices(h, {})))
    for row in rows.values():
        assert row["ci_low"] <= row["regret"] <= row["ci_high"] and row["ci_low"] < row["ci_high"]
    assert rows["best-val"]["regret"] == pytest.approx(100 * (np.mean(scores[2]) - np.mean(scores[3])))
    single = by_rule(unit_regret(sweep_table({e: v[:1] for e, v in SCORES.items()}, [0]), choices(h, {})))
    assert single["best-val"]["regret"] == pytest.approx(8.0)  # .70 - .62
    assert single["best-val"]["ci_low"] == single["best-val"]["ci_high"] == pytest.approx(8.0)


def test_an_epoch_that_was_not_swept_is_missing_not_guessed(tmp_path: Path):
    h = history(tmp_path / "h")
    table = sweep_table({e: v for e, v in SCORES.items() if e != 2})  # swept with --epochs 1,3 (+ last)
    rows = by_rule(unit_regret(table, choices(h, {"early": Fixed(1, 2), "first": Fixed(1)}),
                               {"ensemble": {0: 0.7}}))
    assert rows["early"]["missing"] == "epoch 2 was not swept" and math.isnan(rows["early"]["regret"])
    assert rows["early"]["epoch"] == 2
    assert rows["first"]["regret"] == pytest.approx(64.0 - 55.0)  # the oracle among the swept epochs: 3
    assert rows["ensemble"]["missing"] == "no student of seed(s) [1000]"
    table = summary(unit_regret(table, choices(h, {"early": Fixed(1, 2)})))
    early = table[(table["rule"] == "early") & (table["dataset"] == "d1")].iloc[0]
    assert early["n"] == 0 and early["missing"] == 1 and math.isnan(early["mean"])


def units(regrets: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"dataset": d, "split": "s", "backbone": "tiny", "seed": i, "metric": "mAP", "students": 3,
             "rule": "r", "kind": "rule", "epoch": 1, "oracle_epoch": 1, "oracle": 50.0, "score": 50.0 - r,
             "regret": r, "ci_low": r, "ci_high": r, "missing": ""}
            for d, values in regrets.items() for i, r in enumerate(values)]
    return pd.DataFrame(rows)


def test_per_dataset_t_interval_and_the_mean_over_datasets():
    table = summary(units({"d1": [1.0, 2.0, 3.0], "d2": [4.0, 6.0]})).set_index("dataset")
    d1, d2, overall = table.loc["d1"], table.loc["d2"], table.loc[OVERALL]
    assert d1["n"] == 3 and d1["mean"] == pytest.approx(2.0) and d1["std"] == pytest.approx(1.0)
    assert d1["ci_high"] - 2.0 == pytest.approx(4.303 / math.sqrt(3))
    assert d2["mean"] == pytest.approx(5.0) and d2["ci_low"] == pytest.approx(5.0 - 12.706)  # se 1, df 1
    # mean of the means; se = sqrt(1/3 + 1) / 2; Welch df = (4/3)^2 / ((1/3)^2 / 2 + 1) = 1.68 -> t(1)
    assert overall["mean"] == pytest.approx(3.5) and overall["n"] == 5
    assert overall["ci_high"] - 3.5 == pytest.approx(12.706 * math.sqrt(4 / 3) / 2)
    lone = summary(units({"d1": [1.0], "d2": [2.0, 2.0]})).set_index("dataset")
    assert lone.loc["d1", "mean"] == 1.0 and math.isnan(lone.loc["d1", "ci_low"])  # one unit: no interval
    assert lone.loc["d2", "ci_low"] == lone.loc["d2", "ci_high"] == 2.0  # no spread
    assert lone.loc[OVERALL, "mean"] == 1.5 and math.isnan(lone.loc[OVERALL, "ci_low"])


def test_the_t_table():
    assert t_975(2) == 4.303 and t_975(35) == T_975[30] and t_975(500) == 1.960 and math.isnan(t_975(0.5))
    stats = pytest.importorskip("scipy.stats")
    for df, value in T_975.items():
        assert value == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)


def test_written_tables(tmp_path: Path):
    h = history(tmp_path / "h")
    frame = regret_table([(sweep_table(), h), (sweep_table(split="s2"), h)], {"early": Fixed(1, 2)})
    markdown = write_regret(frame, tmp_path)
    assert (tmp_path / "regret.md").read_text() == markdown
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in markdown.splitlines()
             if line.startswith("| ")}
    assert cells["rule"] == ["d1 (mAP)", OVERALL]
    assert cells["early"] == ["0.00 ± 0.00"] * 2 and cells["last"] == ["20.00 ± 0.00"] * 2
    assert "e3: 1.00 [0.00, 8.00]" in markdown and "lower is better" in markdown
    assert pd.read_csv(tmp_path / "regret.csv")["rule"].tolist() == ["early", "best-val", "last"] * 2
    assert set(pd.read_csv(tmp_path / "regret_summary.csv")["column"]) == {"d1 (mAP)", OVERALL}


def sweep_run_dir(run_dir: Path) -> None:
    history(run_dir / "jobs" / "teacher" / "teacher-key" / "history")
    (run_dir / "jobs" / "teacher" / "teacher-key" / "done.json").write_text(json.dumps(
        {"stage": "teacher", "key": "teacher-key", "job": {"dataset": "d1", "split": ["s1", [], [], []],
                                                           "backbone": "tiny", "seed": 0}}))
    (run_dir / "sweep").mkdir(parents=True)
    sweep_table().to_csv(run_dir / "sweep" / "d1-s1-tiny-seed0.csv", index=False)


def test_report_of_a_sweep_directory_writes_the_regret_tables(tmp_path: Path, capsys: pytest.CaptureFixture):
    sweep_run_dir(tmp_path)
    (tmp_path / "sweep" / "old-seed1.csv").write_text("epoch,student_test\n1,0.5\n")  # a single-seed sweep of before
    assert main(["report", str(tmp_path)]) == 0  # no results.csv: sweeps only
    out = capsys.readouterr().out
    assert "Regret against the oracle teacher" in out and "e3: 1.00 [0.00, 8.00]" in out
    assert "old-seed1.csv: written before multi-seed sweeps" in out
    frame = pd.read_csv(tmp_path / "regret.csv")
    assert {"band", "best-val", "last"} <= set(frame["rule"])  # every registered rule with default parameters
    assert (tmp_path / "regret.md").is_file() and not (tmp_path / "comparison.md").exists()


def test_report_with_results_and_sweeps_writes_both(tmp_path: Path, capsys: pytest.CaptureFixture):
    sweep_run_dir(tmp_path)
    write_results([{"dataset": "d1", "split": "s1", "backbone": "tiny", "strategy": "best-val", "seed": 0,
                    "metric": "mAP", "value": 0.5, "primary": True, "checkpoints": "s0e3", "student_key": "k"}],
                  tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "50.0 ± 0.0" in out and "Regret against the oracle teacher" in out
    assert (tmp_path / "comparison.md").is_file() and (tmp_path / "regret.md").is_file()


def test_no_sweep_no_regret(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert write_run_regret(tmp_path) is None
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.csv" in capsys.readouterr().err


def test_a_teacher_key_of_digits_only_is_read_as_text(tmp_path: Path):
    from harness.report.regret import run_dir_sweeps

    key = "01234567890123456789"  # a hex digest can be all digits: read as a number, it would lose its 0
    history(tmp_path / "jobs" / "teacher" / key / "history")
    (tmp_path / "sweep").mkdir()
    sweep_table(key=key).to_csv(tmp_path / "sweep" / "d1-s1-tiny-seed0.csv", index=False)
    units, notes = run_dir_sweeps(tmp_path)
    assert notes == [] and len(units) == 1 and units[0][0]["teacher_key"].iloc[0] == key
