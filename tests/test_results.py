"""The comparison table is a view of the long-format rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.report.results import comparison, read_results, render_tables, write_results, write_tables


def rows() -> list[dict]:
    out = []
    for strategy, values in {"hard": [0.30, 0.34], "iese": [0.40, 0.44]}.items():
        for seed, value in enumerate(values):
            out.append({"dataset": "d1", "split": "s", "backbone": "tiny", "strategy": strategy, "seed": seed,
                        "metric": "mAP", "value": value, "primary": True, "checkpoints": "", "student_key": "k"})
            out.append({"dataset": "d1", "split": "s", "backbone": "tiny", "strategy": strategy, "seed": seed,
                        "metric": "other", "value": 0.99, "primary": False, "checkpoints": "", "student_key": "k"})
    out.append({"dataset": "d2", "split": "s", "backbone": "tiny", "strategy": "hard", "seed": 0,
                "metric": "accuracy", "value": 0.5, "primary": True, "checkpoints": "", "student_key": "k"})
    return out


def test_mean_std_best_and_missing_cells(tmp_path: Path):
    frame = write_results(rows(), tmp_path)
    assert read_results(tmp_path).shape == frame.shape
    stats = comparison(frame, ["hard", "iese"])
    iese = stats[(stats.strategy == "iese") & (stats.column == "d1 (mAP)")].iloc[0]
    assert iese["mean"] == 42.0 and round(iese["std"], 4) == round(pd.Series([40.0, 44.0]).std(), 4)
    assert bool(iese["best"]) and iese["n"] == 2
    tables = render_tables(stats)
    assert "**42.0 ± 2.8**" in tables["md"] and "32.0 ± 2.8" in tables["md"]
    assert "—" in tables["md"]  # iese has no d2 result
    assert r"\textbf{42.0 $\pm$ 2.8}" in tables["tex"]
    assert tables["md"].index("hard") < tables["md"].index("iese")
    assert "99" not in tables["md"]  # non-primary metrics stay out of the table


def row(dataset: str, metric: str, strategy: str, seed: int, value: float) -> dict:
    return {"dataset": dataset, "split": "fold1", "backbone": "tiny", "strategy": strategy, "seed": seed,
            "metric": metric, "value": value, "primary": True, "checkpoints": "", "student_key": "k"}


def ranked_rows() -> pd.DataFrame:
    """d1: best-val 40..45 over six seeds (mean 42.5); "up" is one point better on every seed (43.5);
    "mixed" is one point worse, better, worse... (mean 42.5, a tie with best-val). d2: one seed, up beats
    best-val, mixed has no result."""
    out = []
    for seed in range(6):
        base = 0.40 + 0.01 * seed
        out += [row("d1", "mAP", "best-val", seed, base), row("d1", "mAP", "up", seed, base + 0.01),
                row("d1", "mAP", "mixed", seed, base + (0.01 if seed % 2 else -0.01))]
    out += [row("d2", "accuracy", "best-val", 0, 0.5), row("d2", "accuracy", "up", 0, 0.6)]
    return pd.DataFrame(out)


def cell(stats: pd.DataFrame, strategy: str, column: str) -> pd.Series:
    return stats[(stats.strategy == strategy) & (stats.column == column)].iloc[0]


def test_ranks_ties_and_mean_rank():
    stats = comparison(ranked_rows())
    assert cell(stats, "up", "d1 (mAP)")["rank"] == 1.0
    assert cell(stats, "best-val", "d1 (mAP)")["rank"] == cell(stats, "mixed", "d1 (mAP)")["rank"] == 2.5
    assert cell(stats, "best-val", "d2 (accuracy)")["rank"] == 2.0
    mean_rank = stats.groupby("strategy")["mean_rank"].first()
    assert mean_rank.to_dict() == {"up": 1.0, "best-val": 2.25, "mixed": 2.5}


def test_paired_comparison_flags_only_significant_differences():
    stats = comparison(ranked_rows())
    up = cell(stats, "up", "d1 (mAP)")
    # six differences of +1 point: only the all-plus and all-minus sign patterns reach |6|, p = 2 / 64
    assert (up["pairs"], round(up["delta"], 6), up["p_value"], up["flag"]) == (6, 1.0, 2 / 64, "better")
    mixed = cell(stats, "mixed", "d1 (mAP)")
    assert (round(mixed["delta"], 6), mixed["p_value"], mixed["flag"]) == (0.0, 1.0, "")
    single = cell(stats, "up", "d2 (accuracy)")
    assert (single["pairs"], single["p_value"], single["flag"]) == (1, 1.0, "")
    assert np.isnan(cell(stats, "best-val", "d1 (mAP)")["pairs"])


def test_tables_show_flags_ranks_mean_rank_and_paired_differences_in_every_format():
    tables = render_tables(comparison(ranked_rows()))
    md, tex, csv = tables["md"], tables["tex"], tables["csv"]
    assert "| **43.5 ± 1.9** ▲ (1) |" in md.replace("  ", "")
    assert "42.5 ± 1.9 (2.5)" in md and "mean rank" in md and "2.25" in md
    assert "+1.0 [+1.0, +1.0] p=0.031 n=6" in md and "▲/▼: better/worse than best-val" in md
    assert r"\textbf{43.5 $\pm$ 1.9} $^{\blacktriangle}$ (1)" in tex and "p=0.031 n=6" in tex
    header = csv.splitlines()[0].split(",")
    assert header[-9:] == ["rank", "mean_rank", "pairs", "delta", "ci_low", "ci_high", "p_value", "flag",
                           "degenerate"]
    assert "up,d1 (mAP),43.5000,1.8708,6,True,1.0000,1.0000,6.0000,1.0000,1.0000,1.0000,0.0312,better,0" in csv
    assert "⚠" not in md and "degenerate" not in md


def test_tables_without_best_val_have_no_paired_comparison():
    frame = ranked_rows()
    stats = comparison(frame[frame.strategy != "best-val"])
    assert stats["pairs"].isna().all() and (stats["flag"] == "").all()
    md = render_tables(stats)["md"]
    assert "▲" not in md and "p=" not in md and "(1)" in md


def test_degenerate_students_are_marked_counted_and_kept_in_the_mean():
    frame = ranked_rows()
    frame["degenerate"] = (frame["strategy"] == "up") & (frame["dataset"] == "d1") & frame["seed"].isin([1, 4])
    stats = comparison(frame)
    up = cell(stats, "up", "d1 (mAP)")
    assert (up["degenerate"], up["n"], up["mean"]) == (2, 6, 43.5)  # the flagged seeds still count
    assert cell(stats, "up", "d2 (accuracy)")["degenerate"] == 0
    tables = render_tables(stats)
    md = tables["md"].replace("  ", "")
    assert "| **43.5 ± 1.9** ▲ ⚠ (1) |" in md and "| **60.0 ± 0.0** (1) |" in md and md.count("⚠") == 2
    assert "⚠ degenerate students: up on d1 (mAP): 2 of 6 students. A degenerate student predicted one class " \
           "for every test frame" in tables["md"]
    assert r"$^{\blacktriangle}$ $^{\dagger}$ (1)" in tables["tex"]
    assert r"% $^{\dagger}$ degenerate students: up on d1 (mAP): 2 of 6 students" in tables["tex"]
    assert "up,d1 (mAP),43.5000,1.8708,6,True,1.0000,1.0000,6.0000,1.0000,1.0000,1.0000,0.0312,better,2" \
        in tables["csv"]


def test_an_older_results_file_without_the_degenerate_column_still_reads(tmp_path: Path):
    ranked_rows().to_csv(tmp_path / "results.csv", index=False)  # the columns before the flag existed
    md = write_tables(read_results(tmp_path), tmp_path)
    assert "**43.5 ± 1.9** ▲ (1)" in md and "⚠" not in md
    assert (comparison(read_results(tmp_path))["degenerate"] == 0).all()
