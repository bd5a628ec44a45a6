"""Long-format result rows and the comparison tables that are views of them (statistics in
:mod:`harness.science.statistics`).

A row's ``degenerate`` says whether its student is degenerate on the test frames (:mod:`harness.metrics.degenerate`):
its number stays in the tables, marked, because it is a result of the strategy (leaving it out would compare
the strategies on different seeds and favour those whose students fail), but it is not evidence. Files
written before the column existed read as not degenerate."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from harness.report.missing import missing_note, read_missing
from harness.science.statistics import column_ranks, paired_comparison
from harness.system.atomic import write_rows, write_text

RESULTS_FILE = "results.csv"
COLUMNS = ["dataset", "split", "backbone", "strategy", "seed", "metric", "value", "primary", "checkpoints",
           "student_key", "degenerate"]


def write_results(rows: Iterable[Mapping[str, object]], run_dir: Path) -> pd.DataFrame:
    return write_rows(Path(run_dir) / RESULTS_FILE, rows, COLUMNS)


def read_results(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        from harness.errors import SdbenchError

        raise SdbenchError(f"no {RESULTS_FILE} in {run_dir}: is it a 'bench run' output directory?")
    return pd.read_csv(path, keep_default_na=True, dtype={"student_key": str})  # a hex digest can be all digits


def _column_label(dataset: str, backbone: str, metric: str, several_backbones: bool) -> str:
    return f"{dataset} [{backbone}] ({metric})" if several_backbones else f"{dataset} ({metric})"


def column_labels(rows: pd.DataFrame) -> list[str]:
    """The table column of each of ``rows``: dataset and metric, and the backbone when ``rows`` have several."""
    several = rows["backbone"].nunique() > 1
    return [_column_label(d, b, m, several) for d, b, m in zip(rows["dataset"], rows["backbone"], rows["metric"])]


REFERENCE = "best-val"
ALPHA = 0.05
FLAGS = {"better": "▲", "worse": "▼", "degenerate": "⚠"}
LATEX_FLAGS = {"better": r"$^{\blacktriangle}$", "worse": r"$^{\blacktriangledown}$", "degenerate": r"$^{\dagger}$"}


def comparison(rows: pd.DataFrame, strategy_order: list[str] | None = None, reference: str = REFERENCE,
               alpha: float = ALPHA) -> pd.DataFrame:
    """Primary metric in percent per strategy (rows) and dataset (columns), strategies in ``strategy_order``
    (default: as they first appear in ``rows``). Returns a long frame with one row per strategy and column:

    mean, std, n      over seeds and splits; ``best`` marks the highest mean of the column
    rank, mean_rank   rank within the column (1 = best, ties averaged) and its mean over the strategy's columns
    pairs, delta, ci_low, ci_high, p_value, flag
                      paired comparison with ``reference`` over matched (split, seed) pairs (see
                      :mod:`harness.science.statistics`); ``flag`` is "better" or "worse" when p < ``alpha``, else "".
                      Empty for the reference itself and when the reference has no results.
    degenerate        how many of the n results are of degenerate students; they count in every other column
    """
    primary = rows[rows["primary"].astype(bool)].copy()
    primary["column"] = column_labels(primary)
    primary["value"] = primary["value"] * 100
    primary["degenerate"] = primary["degenerate"].eq(True) if "degenerate" in primary else False
    stats = (primary.groupby(["strategy", "column"], sort=False)["value"]
             .agg(mean="mean", std="std", n="count").reset_index())
    stats["std"] = stats["std"].fillna(0.0)
    best = stats.groupby("column")["mean"].transform("max")
    stats["best"] = stats["mean"] >= best - 1e-9
    stats["rank"] = column_ranks(stats)
    stats["mean_rank"] = stats.groupby("strategy")["rank"].transform("mean")
    stats = stats.merge(paired_comparison(primary, reference), on=["strategy", "column"], how="left")
    significant = stats["p_value"] < alpha
    stats["flag"] = np.where(significant & (stats["delta"] > 0), "better",
                             np.where(significant & (stats["delta"] < 0), "worse", ""))
    flagged = primary.groupby(["strategy", "column"], sort=False)["degenerate"].sum().rename("degenerate")
    stats = stats.merge(flagged.reset_index(), on=["strategy", "column"], how="left")
    order = strategy_order or list(dict.fromkeys(rows["strategy"]))
    rank = {s: i for i, s in enumerate(order)}
    return stats.sort_values(["strategy", "column"], key=lambda s: s.map(rank) if s.name == "strategy" else s)


def _cell(row: pd.Series, bold: Callable[[str], str], flags: Mapping[str, str], pm: str) -> str:
    text = f"{row['mean']:.1f} {pm} {row['std']:.1f}"
    text = bold(text) if row["best"] else text
    if row["flag"]:
        text += f" {flags[row['flag']]}"
    if row["degenerate"]:
        text += f" {flags['degenerate']}"
    return f"{text} ({row['rank']:g})"


def _wide(stats: pd.DataFrame, bold: Callable[[str], str], flags: Mapping[str, str], pm: str) -> pd.DataFrame:
    cells = stats.assign(cell=[_cell(row, bold, flags, pm) for _, row in stats.iterrows()])
    wide = cells.pivot(index="strategy", columns="column", values="cell")
    strategies = list(dict.fromkeys(stats["strategy"]))
    wide = wide.reindex(index=strategies, columns=sorted(stats["column"].unique())).fillna("—")
    mean_rank = stats.groupby("strategy")["mean_rank"].first()
    wide["mean rank"] = [f"{mean_rank[s]:.2f}" for s in strategies]
    return wide


def _paired_wide(stats: pd.DataFrame) -> pd.DataFrame:
    """Delta [bootstrap CI], p-value and pair count against the reference, per strategy and column."""
    paired = stats[stats["pairs"].notna()]
    cells = paired.assign(cell=[f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] p={p:.3f} n={n:.0f}" for d, lo, hi, p, n in
                                zip(paired["delta"], paired["ci_low"], paired["ci_high"], paired["p_value"],
                                    paired["pairs"])])
    wide = cells.pivot(index="strategy", columns="column", values="cell")
    return wide.reindex(index=list(dict.fromkeys(paired["strategy"])),
                        columns=sorted(stats["column"].unique())).fillna("—")


def _captions(stats: pd.DataFrame, reference: str, alpha: float) -> tuple[str, str | None]:
    main = ("Primary metric (%) of the student, mean ± std over seeds and splits; best per column in bold; "
            "(r) = rank in the column, 1 = best, ties averaged; mean rank over the columns where the strategy "
            "has results.")
    if not stats["pairs"].notna().any():
        return main, None
    main += (f" ▲/▼: better/worse than {reference} (two-sided exact sign-flip permutation test over matched "
             f"(split, seed) pairs, p < {alpha:g}).")
    paired = (f"Paired difference to {reference} in points: mean [95% bootstrap CI], sign-flip p-value, "
              "number of matched (split, seed) pairs.")
    return main, paired


def _degenerate_note(stats: pd.DataFrame, mark: str) -> str | None:
    """What ``mark`` in a cell means, and the cells it marks; None when no student is degenerate."""
    flagged = stats[stats["degenerate"] > 0]
    if flagged.empty:
        return None
    cells = "; ".join(f"{r.strategy} on {r.column}: {r.degenerate:g} of {r.n:g} students"
                      for r in flagged.itertuples())
    return (f"{mark} degenerate students: {cells}. A degenerate student predicted one class for every test frame "
            "(multi-label: every class's probability is constant over the test frames), so its number is not "
            "evidence; it still counts in the mean, the rank and the paired test, since leaving it out would "
            "compare the strategies on different seeds.")


def render_tables(stats: pd.DataFrame, reference: str = REFERENCE, alpha: float = ALPHA) -> dict[str, str]:
    """The comparison as Markdown, LaTeX and CSV text: the main table (mean ± std, flags, ranks, mean rank,
    the note on degenerate students) and, when ``reference`` has results, the table of paired differences."""
    from tabulate import tabulate

    main_caption, paired_caption = _captions(stats, reference, alpha)
    markdown = _wide(stats, lambda cell: f"**{cell}**", FLAGS, "±")
    latex = _wide(stats, lambda cell: r"\textbf{" + cell + "}", LATEX_FLAGS, r"$\pm$")
    md = tabulate(markdown, headers="keys", tablefmt="github") + f"\n\n{main_caption}\n"
    tex = (f"% {main_caption}\n".replace("▲/▼", "up/down triangles (amssymb)")
           + tabulate(latex, headers="keys", tablefmt="latex_raw") + "\n")
    if note := _degenerate_note(stats, FLAGS["degenerate"]):
        md += f"\n{note}\n"
        tex += f"% {_degenerate_note(stats, LATEX_FLAGS['degenerate'])}\n"
    if paired_caption:
        paired = _paired_wide(stats)
        md += "\n" + tabulate(paired, headers="keys", tablefmt="github") + f"\n\n{paired_caption}\n"
        tex += f"\n% {paired_caption}\n" + tabulate(paired, headers="keys", tablefmt="latex") + "\n"
    return {"md": md, "tex": tex, "csv": stats.to_csv(index=False, float_format="%.4f")}


def write_tables(rows: pd.DataFrame, run_dir: Path, strategy_order: list[str] | None = None,
                 missing: pd.DataFrame | None = None, footer: str = "") -> str:
    """Write ``comparison.{md,tex,csv}`` into ``run_dir`` and return the Markdown tables, followed by the list
    of missing results (default: read from the run's ``missing.csv``) and ``footer`` (Markdown; in the LaTeX
    file as comments)."""
    missing = read_missing(run_dir) if missing is None else missing
    tables = render_tables(comparison(rows, strategy_order)) if not rows.empty else {"md": "", "tex": "", "csv": ""}
    note = "\n".join(part for part in (missing_note(missing), footer) if part)
    tables["md"] += ("\n" if tables["md"] else "") + note
    tables["tex"] += "".join(f"% {line}\n" for line in note.splitlines())
    for suffix, text in tables.items():
        write_text(Path(run_dir) / f"comparison.{suffix}", text)
    return tables["md"]
