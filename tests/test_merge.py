"""`bench report A B --out DIR` and the notebook API: several hand-built run directories as one comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import SdbenchError
from harness.report.analysis import comparison, load_runs, teacher_histories
from harness.report.missing import write_missing
from harness.report.results import write_results
from harness.science.sweep import columns
from harness.train.history import EpochRecord, HistoryWriter

PROVIDERS = {"dataset": {"d1": "plugins.datasets.demo (sdbench 0.1.0)"},
             "strategy": {"hard": "plugins.strategies.baselines (sdbench 0.1.0)",
                          "best-val": "plugins.strategies.baselines (sdbench 0.1.0)",
                          "iese": "plugins.strategies.intermediate (sdbench 0.1.0)"}}
LABELS = np.array([[1, 0], [0, 1]], dtype=np.uint8)


def write_run(run_dir: Path, results: list[tuple[str, int, float, str]], seeds: list[int], teacher_epochs: int = 3,
              missing: list[tuple[str, int, str]] = ()) -> Path:
    """A run directory: ``results`` as (strategy, seed, primary value, student key) of d1/fold1/tiny, each with a
    non-primary metric too; ``missing`` as (strategy, seed, reason); a run.json with the config."""
    rows = []
    for strategy, seed, value, key in results:
        cell = {"dataset": "d1", "split": "fold1", "backbone": "tiny", "strategy": strategy, "seed": seed,
                "checkpoints": "", "student_key": key, "degenerate": False}
        rows += [cell | {"metric": "mAP", "value": value, "primary": True},
                 cell | {"metric": "other", "value": 0.99, "primary": False}]
    write_results(rows, run_dir)
    write_missing([{"dataset": "d1", "split": "fold1", "backbone": "tiny", "strategy": strategy, "seed": seed,
                    "reason": reason} for strategy, seed, reason in missing], run_dir)
    config = {"datasets": ["d1"], "strategies": sorted({r[0] for r in results}), "seeds": seeds,
              "teacher": {"epochs": teacher_epochs, "lr": 0.002}, "student": {"epochs": 2}}
    (run_dir / "run.json").write_text(json.dumps({"config": config, "packages": {"sdbench": "0.1.0"},
                                                  "git_revision": f"rev-{run_dir.name}", "plugins": PROVIDERS}))
    return run_dir


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path]:
    """Run a: seeds 0, 1 of hard and best-val; run b: seeds 1, 2, and iese too. A hard or best-val student
    depends on its own seed only, so seed 1 of them is the same student job in both. a could not compute
    best-val seed 2 (b has it) nor hard seed 3 (nobody has it)."""
    a = write_run(tmp_path / "a", [("hard", 0, 0.30, "h0"), ("hard", 1, 0.36, "h1"),
                                   ("best-val", 0, 0.40, "b0"), ("best-val", 1, 0.46, "b1")], seeds=[0, 1],
                  missing=[("best-val", 2, "student failed: out of memory"), ("hard", 3, "teacher seed 3 failed")])
    b = write_run(tmp_path / "b", [("hard", 1, 0.36, "h1"), ("hard", 2, 0.39, "h2"),
                                   ("best-val", 1, 0.46, "b1"), ("best-val", 2, 0.49, "b2"),
                                   ("iese", 1, 0.50, "i1"), ("iese", 2, 0.52, "i2")], seeds=[1, 2])
    return a, b


def test_merged_report_counts_each_shared_cell_once(shared: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture):
    a, b = shared
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    stats = pd.read_csv(out / "comparison.csv").set_index("strategy")
    # hard: seeds 0, 1, 2 = 30, 36, 39 -> n 3, mean 35 (seed 1 counted twice would give n 4, mean 35.25)
    assert stats.loc["hard", "n"] == 3 and stats.loc["hard", "mean"] == pytest.approx(35.0)
    assert stats.loc["best-val", "n"] == 3 and stats.loc["best-val", "mean"] == pytest.approx(45.0)
    assert stats.loc["iese", "n"] == 2 and list(stats.index) == ["hard", "best-val", "iese"]
    md = (out / "comparison.md").read_text()
    assert "35.0 ± 4.6" in md and md.strip() in capsys.readouterr().out
    assert "Missing results (1)" in md and "hard seed 3: teacher seed 3 failed" in md and "out of memory" not in md
    assert pd.read_csv(out / "missing.csv")[["strategy", "seed"]].values.tolist() == [["hard", 3]]
    assert "Provenance" in md and f"merged from 2 run(s): {a}, {b}" in md and "% **Provenance**" in \
        (out / "comparison.tex").read_text()
    provenance = pd.read_csv(out / "provenance.csv")
    assert provenance[["column", "run", "results", "shared", "strategies"]].values.tolist() == [
        ["d1 (mAP)", str(a), 4, 2, "hard, best-val"], ["d1 (mAP)", str(b), 6, 2, "hard, best-val, iese"]]
    assert provenance["sdbench"].tolist() == ["0.1.0"] * 2 and provenance["plugins"].tolist() == ["sdbench 0.1.0"] * 2
    assert provenance["git_revision"].tolist() == ["rev-a", "rev-b"]
    # the configs differ in strategies, which only choose cells, and in seeds, which iese ensembles over
    assert list(provenance.columns) == ["column", "run", "results", "shared", "strategies", "sdbench",
                                        "git_revision", "plugins", "seeds"]
    assert provenance["seeds"].tolist() == ["[0, 1]", "[1, 2]"] and "The runs' configs differ in seeds:" in md
    assert not (a / "provenance.csv").exists()  # the runs are left as they were


def test_report_of_one_directory_is_unchanged_and_merging_needs_a_directory_of_its_own(
        shared: tuple[Path, Path], capsys: pytest.CaptureFixture):
    a, b = shared
    assert main(["report", str(a)]) == 0
    assert not (a / "provenance.csv").exists() and "Provenance" not in (a / "comparison.md").read_text()
    assert "out of memory" in (a / "comparison.md").read_text()  # its own missing results
    capsys.readouterr()
    assert main(["report", str(a), str(b)]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["report", str(a), str(b), "--out", str(a)]) == 2
    assert "a merged report goes into a directory of its own" in capsys.readouterr().err
    assert main(["report", str(a), str(a), "--out", str(a.parent / "m")]) == 2
    assert "given twice" in capsys.readouterr().err


def test_runs_of_different_configs_without_a_shared_cell_merge_with_their_config_in_the_provenance(
        shared: tuple[Path, Path], tmp_path: Path):
    a = shared[0]
    d = write_run(tmp_path / "d", [("iese", 0, 0.50, "i0"), ("iese", 1, 0.52, "i1")], seeds=[0, 1], teacher_epochs=6)
    assert main(["report", str(a), str(d), "--out", str(tmp_path / "merged")]) == 0
    provenance = pd.read_csv(tmp_path / "merged" / "provenance.csv")
    assert provenance[["run", "teacher.epochs"]].values.tolist() == [[str(a), 3], [str(d), 6]]
    assert "The runs' configs differ in teacher.epochs" in (tmp_path / "merged" / "comparison.md").read_text()


@pytest.fixture
def conflicting(shared: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """Run c: like a, but its teachers train 6 epochs; hard does not use the teacher, so its students are a's."""
    c = write_run(tmp_path / "c", [("hard", 0, 0.30, "h0"), ("hard", 1, 0.36, "h1"),
                                   ("best-val", 0, 0.42, "c0"), ("best-val", 1, 0.41, "c1")], seeds=[0, 1],
                  teacher_epochs=6)
    return shared[0], c


def test_cells_computed_differently_are_refused_naming_both_runs(conflicting: tuple[Path, Path], tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture):
    a, c = conflicting
    out = tmp_path / "merged"
    assert main(["report", str(a), str(c), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot merge the runs: 2 cell(s) were computed differently" in err
    assert f"- d1/fold1/tiny best-val seed 0: {a} (student b0) vs {c} (student c0)" in err
    assert f"- d1/fold1/tiny best-val seed 1: {a} (student b1) vs {c} (student c1)" in err
    assert "hard seed" not in err  # the same students in both runs
    assert f"{a} and {c} differ in teacher.epochs (3 vs 6), git_revision (rev-a vs rev-c)" in err
    assert not (out / "comparison.md").exists()


def test_load_runs_returns_the_union_with_the_run_and_the_config_that_differs(conflicting: tuple[Path, Path]):
    a, c = conflicting
    frame = load_runs(a, c)
    assert len(frame) == 2 * (4 + 4)  # every row of both runs, the shared ones once per run
    assert frame.groupby("run")["teacher.epochs"].unique().map(list).to_dict() == {str(a): [3], str(c): [6]}
    assert {"run", "teacher.epochs"} <= set(frame.columns) and "teacher.lr" not in frame and "seeds" not in frame
    assert "teacher.epochs" not in load_runs(a)  # nothing differs within one run
    with pytest.raises(SdbenchError, match=r"(?s)best-val seed 0: .* vs .*teacher.epochs \(3 vs 6\)"):
        comparison(frame)
    md = comparison(frame.assign(strategy=frame["strategy"] + "@" + frame["teacher.epochs"].astype(str)))
    assert "best-val@3" in md and "best-val@6" in md and "41.5 ± 0.7" in md
    assert "33.0 ± 4.2" in comparison(frame[frame["run"] == str(a)])


def write_teacher(run_dir: Path, key: str, seed: int, val: list[float]) -> None:
    directory = run_dir / "jobs" / "teacher" / key
    writer = HistoryWriter(directory / "history", seed, "multilabel", "mAP", LABELS, LABELS)
    for epoch, v in enumerate(val, start=1):
        probs = np.where(LABELS == 1, 0.5 + 0.1 * epoch, 0.5 - 0.1 * epoch).astype(np.float32)
        writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"mAP": v}), probs, probs)
    job = {"dataset": "d1", "split": ["fold1", [], [], []], "backbone": "tiny", "seed": seed}
    (directory / "done.json").write_text(json.dumps({"stage": "teacher", "key": key, "job": job}))


def write_sweep(run_dir: Path, key: str) -> None:
    rows = [{"dataset": "d1", "split": "fold1", "backbone": "tiny", "seed": 0, "teacher_key": key, "metric": "mAP",
             "epoch": epoch, "students": 2, "student_test": np.mean(scores), "student_test_std": 0.0,
             "student_test_seed0": scores[0], "student_test_seed1000": scores[1],
             "student_val_seed0": scores[0], "student_val_seed1000": scores[1]}
            for epoch, scores in {1: [0.5, 0.6], 2: [0.7, 0.6], 3: [0.6, 0.6]}.items()]
    (run_dir / "sweep").mkdir()
    pd.DataFrame(rows).reindex(columns=columns([0, 1000])).to_csv(run_dir / "sweep" / f"d1-{key}.csv", index=False)


def test_teachers_and_sweeps_merge_each_teacher_once(shared: tuple[Path, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture):
    a, b = shared
    for run in (a, b):
        write_teacher(run, "t0", 0, [0.3, 0.5, 0.4])  # the same teacher in both runs
        write_sweep(run, "t0")
    write_teacher(b, "t1", 1, [0.2, 0.6, 0.1])
    histories = teacher_histories(a, b)
    assert histories.groupby("run")["seed"].apply(list).to_dict() == {str(a): [0] * 3, str(b): [0] * 3 + [1] * 3}
    assert histories.loc[histories["seed"] == 1, "best_val"].tolist() == [False, True, False]
    out = tmp_path / "merged"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    teachers = pd.read_csv(out / "teacher_diagnostics.csv")
    assert teachers[["run", "seed"]].values.tolist() == [[str(a), 0]] * 3 + [[str(b), 1]] * 3
    assert f"**{a}**" in printed and "expected calibration error" in printed
    regret = pd.read_csv(out / "regret.csv")
    assert len(regret) == regret["rule"].nunique()  # one unit: b's sweep of t0 is a's
    assert f"note: {b}: teacher t0 was swept in {a} too; counted once, from there" in printed
