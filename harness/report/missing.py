"""Results a run could not produce: one row per (dataset, split, backbone, strategy, seed) with the reason.

They are written to ``missing.csv`` next to ``results.csv``; the comparison tables count only what exists,
and say below the table which results are missing and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from harness.system.atomic import write_rows

MISSING_FILE = "missing.csv"
COLUMNS = ["dataset", "split", "backbone", "strategy", "seed", "reason"]


def write_missing(rows: Iterable[Mapping[str, object]], run_dir: Path) -> pd.DataFrame:
    return write_rows(Path(run_dir) / MISSING_FILE, rows, COLUMNS)


def read_missing(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / MISSING_FILE
    return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)


def missing_note(missing: pd.DataFrame) -> str:
    """A Markdown list of the missing results, grouped by reason; empty when nothing is missing."""
    if missing.empty:
        return ""
    lines = [f"**Missing results ({len(missing)})**: cells above average over fewer seeds or splits, or show —."]
    for reason, group in missing.groupby("reason", sort=False):
        where = ", ".join(f"{r.dataset}/{r.split}/{r.backbone} {r.strategy} seed {r.seed}"
                          for r in group.itertuples())
        lines.append(f"- {where}: {reason}")
    return "\n".join(lines) + "\n"
