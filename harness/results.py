"""Long-format result rows and the comparison tables that are views of them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from harness.atomic import write_text

RESULTS_FILE = "results.csv"
COLUMNS = ["dataset", "split", "backbone", "strategy", "seed", "metric", "value", "primary", "checkpoints",
           "student_key"]


def write_results(rows: Iterable[Mapping[str, object]], run_dir: Path) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    write_text(Path(run_dir) / RESULTS_FILE, frame.to_csv(index=False))
    return frame


def read_results(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        from harness.errors import SdbenchError

        raise SdbenchError(f"no {RESULTS_FILE} in {run_dir}: is it a 'bench run' output directory?")
    return pd.read_csv(path, keep_default_na=True)


def _column_label(dataset: str, backbone: str, metric: str, several_backbones: bool) -> str:
    return f"{dataset} [{backbone}] ({metric})" if several_backbones else f"{dataset} ({metric})"


def comparison(rows: pd.DataFrame, strategy_order: list[str] | None = None) -> pd.DataFrame:
    """Primary metric in percent per strategy (rows) and dataset (columns): mean, std and count over
    seeds and splits, strategies in ``strategy_order`` (default: as they first appear in ``rows``).
    Returns a long frame with columns strategy, column, mean, std, n, best."""
    primary = rows[rows["primary"].astype(bool)].copy()
    several = primary["backbone"].nunique() > 1
    primary["column"] = [_column_label(d, b, m, several)
                         for d, b, m in zip(primary["dataset"], primary["backbone"], primary["metric"])]
    stats = (primary.assign(value=primary["value"] * 100)
             .groupby(["strategy", "column"], sort=False)["value"]
             .agg(mean="mean", std="std", n="count").reset_index())
    stats["std"] = stats["std"].fillna(0.0)
    best = stats.groupby("column")["mean"].transform("max")
    stats["best"] = stats["mean"] >= best - 1e-9
    order = strategy_order or list(dict.fromkeys(rows["strategy"]))
    rank = {s: i for i, s in enumerate(order)}
    return stats.sort_values(["strategy", "column"], key=lambda s: s.map(rank) if s.name == "strategy" else s)


def _wide(stats: pd.DataFrame, mark_best: callable) -> pd.DataFrame:
    cells = stats.assign(cell=[mark_best(f"{m:.1f} ± {s:.1f}", b) for m, s, b in
                               zip(stats["mean"], stats["std"], stats["best"])])
    wide = cells.pivot(index="strategy", columns="column", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(stats["strategy"])), columns=sorted(stats["column"].unique()))
    return wide.fillna("—")


def render_tables(stats: pd.DataFrame) -> dict[str, str]:
    """The comparison as Markdown, LaTeX and CSV text; the best mean per column is marked."""
    from tabulate import tabulate

    markdown = _wide(stats, lambda cell, best: f"**{cell}**" if best else cell)
    latex = _wide(stats, lambda cell, best: (r"\textbf{" + cell + "}" if best else cell).replace("±", r"$\pm$"))
    caption = "Primary metric (%) of the student, mean ± std over seeds and splits; best per column in bold."
    return {
        "md": tabulate(markdown, headers="keys", tablefmt="github") + f"\n\n{caption}\n",
        "tex": tabulate(latex, headers="keys", tablefmt="latex_raw") + "\n",
        "csv": stats.to_csv(index=False, float_format="%.4f"),
    }


def write_tables(rows: pd.DataFrame, run_dir: Path, strategy_order: list[str] | None = None) -> str:
    """Write ``comparison.{md,tex,csv}`` into ``run_dir`` and return the Markdown table."""
    tables = render_tables(comparison(rows, strategy_order))
    for suffix, text in tables.items():
        write_text(Path(run_dir) / f"comparison.{suffix}", text)
    return tables["md"]
