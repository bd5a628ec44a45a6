"""The regret report: the tables of :mod:`harness.science.regret` rendered and written, for the sweeps of a run
directory (``bench regret``) or of several (``bench report``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.science.regret import OVERALL, TABLE_NAME, TEXT_COLUMNS, regret_table, summary
from harness.science.sweep import seed_columns
from harness.system.atomic import write_text
from harness.train.history import TeacherHistory

# -- rendering --------------------------------------------------------------------------------------

def _summary_cell(row: pd.Series) -> str:
    if not np.isfinite(row["mean"]):
        return "—"
    text = f"{row['mean']:.2f}"
    text += f" ± {(row['ci_high'] - row['ci_low']) / 2:.2f}" if np.isfinite(row["ci_low"]) else f" (n={row['n']})"
    return text + (f" ({row['missing']} missing)" if row["missing"] else "")


def _unit_cell(row: pd.Series) -> str:
    where = f"e{int(row['epoch'])}: " if pd.notna(row["epoch"]) else ""
    if row["missing"]:
        return f"{where}missing ({row['missing']})"
    return f"{where}{row['regret']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def render_markdown(units: pd.DataFrame, table: pd.DataFrame) -> str:
    """The rule x dataset table and the per-unit table, as Markdown with their captions."""
    from tabulate import tabulate

    rules = list(dict.fromkeys(units["rule"]))
    wide = table.assign(cell=[_summary_cell(r) for _, r in table.iterrows()]).pivot(
        index="rule", columns="column", values="cell")
    datasets = [c for c in dict.fromkeys(table["column"]) if c != OVERALL]
    wide = wide.reindex(index=rules, columns=datasets + [OVERALL]).fillna("—")
    main = tabulate(wide, headers="keys", tablefmt="github")
    main_caption = ("Regret against the oracle teacher in points (oracle: the teacher epoch whose students have "
                    "the best mean test score; regret: oracle minus the mean test score of the students of the "
                    "chosen epoch, or of the strategy's students; lower is better). Window rules choose the "
                    "best-validation epoch inside their window. Per dataset: mean over splits and teacher seeds "
                    "± half-width of the 95% t-interval over them (n=1: no interval); mean over datasets: mean "
                    "of the dataset means, its interval from their standard errors (Welch).")
    units = units.assign(unit=[f"{d} / {s} / {b} / teacher seed {t} (K={k}, oracle e{o}: {v:.2f})" for d, s, b, t, k, o, v in
                               zip(units["dataset"], units["split"], units["backbone"], units["seed"],
                                   units["students"], units["oracle_epoch"], units["oracle"])])
    cells = units.assign(cell=[_unit_cell(r) for _, r in units.iterrows()])
    per_unit = cells.pivot(index="unit", columns="rule", values="cell")
    per_unit = per_unit.reindex(index=list(dict.fromkeys(cells["unit"])), columns=rules).fillna("—")
    unit_caption = ("Per dataset / split / backbone / teacher seed (K student seeds; the oracle epoch and its "
                    "mean student test score in %): the chosen epoch and its regret in points [95% bootstrap "
                    "interval over the student seeds, resampled jointly for every epoch, the oracle max "
                    "re-taken in each draw]. The plug-in oracle is biased upward with few seeds.")
    return (f"{main}\n\n{main_caption}\n\n" + tabulate(per_unit, headers="keys", tablefmt="github")
            + f"\n\n{unit_caption}\n")


def write_regret(units: pd.DataFrame, directory: Path, name: str = TABLE_NAME) -> str:
    """Write ``<name>.csv`` (per unit), ``<name>_summary.csv`` (rule x dataset) and ``<name>.md`` into
    ``directory``; return the Markdown."""
    directory = Path(directory)
    table = summary(units)
    markdown = render_markdown(units, table)
    write_text(directory / f"{name}.csv", units.to_csv(index=False, float_format="%.4f"))
    write_text(directory / f"{name}_summary.csv", table.to_csv(index=False, float_format="%.4f"))
    write_text(directory / f"{name}.md", markdown)
    return markdown


# -- the window rules to compare, and a run directory's sweeps -----------------------------------

def registered_rules(registry: Any = None) -> dict[str, Any]:
    """Every registered window rule that builds with its default parameters, by name."""
    from harness.science.selection import window_rule

    if registry is None:
        from harness.hooks.registry import get_registry

        registry = get_registry()
    rules = {}
    for name in registry.names("window"):
        try:
            rules[name] = window_rule(name, registry)
        except (TypeError, ValueError):  # a rule without defaults (``epochs``) has nothing to compare
            continue
    return rules


def run_dir_sweeps(run_dir: Path) -> tuple[list[tuple[pd.DataFrame, TeacherHistory]], list[str]]:
    """The sweeps of ``run_dir/sweep/*.csv`` with their teacher histories, reopened from the run's store via
    ``teacher_key``; and a note for each sweep that could not be used."""
    from harness.runs.store import ArtifactStore

    run_dir = Path(run_dir)
    store = ArtifactStore(run_dir / "jobs")
    units, notes = [], []
    for path in sorted((run_dir / "sweep").glob("*.csv")):
        table = pd.read_csv(path, dtype=TEXT_COLUMNS)
        if "teacher_key" not in table or not seed_columns(table):
            notes.append(f"{path.name}: written before multi-seed sweeps (no teacher_key or per-seed columns); "
                         "run 'bench sweep' again")
            continue
        history_dir = store.path("teacher", str(table["teacher_key"].iloc[0])) / "history"
        if not (history_dir / "history.json").is_file():
            notes.append(f"{path.name}: its teacher's history is not in {store.root}")
            continue
        units.append((table, TeacherHistory(history_dir)))
    return units, notes


def write_run_regret(run_dir: Path, rules: Mapping[str, Any] | None = None, registry: Any = None) -> str | None:
    """Regret tables of a run directory's sweeps (see :func:`run_dir_sweeps`), written as
    ``regret.{csv,md}`` and ``regret_summary.csv``; the Markdown, or None when it has no sweep."""
    units, notes = run_dir_sweeps(run_dir)
    return write_units_regret(units, notes, Path(run_dir), rules, registry)


def write_units_regret(units: Sequence[tuple[pd.DataFrame, TeacherHistory]], notes: Sequence[str], directory: Path,
                       rules: Mapping[str, Any] | None = None, registry: Any = None) -> str | None:
    """Regret tables of the sweeps ``units`` against ``rules`` (default: every registered rule), written into
    ``directory``; the Markdown followed by ``notes``, the notes alone without units, or None without either."""
    note = "".join(f"\nnote: {n}" for n in notes)
    if not units:
        return note.strip() or None
    rules = registered_rules(registry) if rules is None else rules
    return write_regret(regret_table(units, rules), directory) + note
