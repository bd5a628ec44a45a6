"""The comparison table is a view of the long-format rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.results import comparison, read_results, render_tables, write_results


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
