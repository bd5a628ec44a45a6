"""Run directories as pandas frames, for notebooks: a thin layer over :mod:`harness.report.merge`,
:mod:`harness.report.results` and :mod:`harness.report.teachers`, which ``bench report`` uses too::

    from harness.api import comparison, load_runs, teacher_histories

    frame = load_runs("runs/epochs3", "runs/epochs6")   # one row per result, with run and teacher.epochs
    print(comparison(frame[frame["run"] == "runs/epochs3"]))
    teachers = teacher_histories("runs/epochs3")         # one row per teacher epoch
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report import results
from harness.report.merge import deduplicate, distinguishing, open_runs, tagged
from harness.report.teachers import teacher_frame


def load_runs(*run_dirs: str | Path) -> pd.DataFrame:
    """The results of one or several run directories: the columns of ``results.csv``, the ``run`` each row
    comes from (its directory, as given), and one column per config key whose value differs between the runs,
    named by its dotted path (``teacher.epochs``, ``strategy_params.iee.epochs``; keys that only choose cells
    or executors, such as ``seeds``, never count). A result that several runs computed by the same student job
    appears once per run; :func:`comparison` counts it once."""
    runs = open_runs(run_dirs)
    return tagged(runs).join(distinguishing(runs), on="run")


def teacher_histories(*run_dirs: str | Path) -> pd.DataFrame:
    """One row per finished teacher epoch of the run directories: ``run``, dataset, split, backbone, seed,
    epoch, train_loss, the primary validation metric (``val_metric``, ``val_score`` as a fraction), whether it
    is the best validation epoch, and the soft-label diagnostics (mean max-probability, mean entropy, ECE)."""
    return teacher_frame(run_dirs)


def comparison_stats(frame: pd.DataFrame, strategy_order: list[str] | None = None) -> pd.DataFrame:
    """The comparison of ``frame`` (rows as :func:`load_runs` gives them, any subset) as a long frame, one row
    per strategy and table column (see :func:`harness.report.results.comparison`). A result that several runs
    computed by the same student job counts once; a cell computed differently by two runs is an error that
    lists them (compare such runs apart, or rename their strategies, e.g. by ``teacher.epochs``)."""
    rows = frame if "run" in frame else frame.assign(run="")
    config = [c for c in rows.columns if c not in results.COLUMNS + ["run"]]
    described = {run: group[config].iloc[0].to_dict() for run, group in rows.groupby("run", sort=False)}
    return results.comparison(deduplicate(rows, described), strategy_order)


def comparison(frame: pd.DataFrame, strategy_order: list[str] | None = None) -> str:
    """:func:`comparison_stats` as the Markdown tables ``bench report`` prints (without the missing results)."""
    return results.render_tables(comparison_stats(frame, strategy_order))["md"]
