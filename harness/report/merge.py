"""Several run directories as one comparison (``bench report A B --out DIR``), with the provenance of its columns.

A result belongs to a *cell* (dataset, split, backbone, strategy, seed) and carries the content-addressed key
of the student job that computed it (``student_key``: the job's configuration, its upstream artifacts and the
code versions). When several runs hold a cell with the same key, they computed it identically: it is counted
once. The same cell with different keys was computed differently (another config, other data or versions):
a *conflict*. Merging refuses conflicts, listing each cell with its runs and what differs in their
``run.json``, instead of picking one: the table would average two experiments, or silently drop one. Such
runs are compared by reporting them separately, or in a notebook (:func:`harness.report.analysis.load_runs`),
where the config columns tell them apart.

Missing results merge too, less those another run has. Teacher diagnostics and regret tables merge as well.
Under the table, and in ``provenance.csv``, each column lists the runs that contributed to it, the config
values that distinguish them, their sdbench version and git revision, and the plugin distributions of the
column's dataset and strategies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from harness.errors import SdbenchError
from harness.report.missing import COLUMNS as MISSING_COLUMNS
from harness.report.missing import read_missing, write_missing
from harness.report.regret import run_dir_sweeps, write_units_regret
from harness.report.results import COLUMNS, RESULTS_FILE, column_labels, read_results, write_tables
from harness.report.teachers import COLUMNS as TEACHER_COLUMNS
from harness.report.teachers import render_markdown as render_teachers
from harness.report.teachers import teacher_frame, write_teacher_tables
from harness.runs.runinfo import RECORD_FILE
from harness.system.atomic import write_text

CELL = ["dataset", "split", "backbone", "strategy", "seed"]
JOB = CELL + ["metric", "student_key"]
"""A result computed by one student job: the same in every run that holds it."""
PROVENANCE_FILE = "provenance.csv"
PROVENANCE_COLUMNS = ["column", "run", "results", "shared", "strategies", "sdbench", "git_revision", "plugins"]
NOT_DISTINGUISHING = ("datasets", "strategies", "backbones", "executor", "executor_options", "rerun", "loggers",
                      "logger_options")
"""Config keys that choose which cells a run computes, where its jobs run or what records them: they change no
result, so they never tell runs apart (the cells themselves do). ``seeds`` is not one of them: a seed-ensemble
strategy (iese) ensembles the teachers of every seed of its run."""
EXPLAINING = ("config", "packages", "plugins", "git_revision", "python")
"""The parts of ``run.json`` whose differences can explain a conflict."""


@dataclass(frozen=True)
class Run:
    """One run directory: its results, its missing results and its ``run.json`` (empty when it has none).
    ``label`` is the directory as given; it names the run in the ``run`` column and in messages."""

    label: str
    path: Path
    results: pd.DataFrame
    missing: pd.DataFrame
    record: Mapping[str, Any]


def read_record(run_dir: Path) -> dict[str, Any]:
    """The ``run.json`` of ``run_dir``, or an empty mapping when it has none."""
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SdbenchError(f"{path}: expected the JSON run record 'bench run' writes, found invalid JSON ({exc})") \
            from None


def open_runs(run_dirs: Sequence[str | Path]) -> list[Run]:
    """The runs of ``run_dirs``, each given once. A directory with sweeps but no ``results.csv`` has no results."""
    if not run_dirs:
        raise SdbenchError("expected at least one run directory, found none")
    runs, seen = [], set()
    for run_dir in map(Path, run_dirs):
        if run_dir.resolve() in seen:
            raise SdbenchError(f"run directory {run_dir} is given twice: give each run once")
        seen.add(run_dir.resolve())
        sweeps_only = not (run_dir / RESULTS_FILE).is_file() and any((run_dir / "sweep").glob("*.csv"))
        results = pd.DataFrame(columns=COLUMNS) if sweeps_only else read_results(run_dir)
        runs.append(Run(str(run_dir), run_dir, results, read_missing(run_dir), read_record(run_dir)))
    return runs


def tagged(runs: Sequence[Run]) -> pd.DataFrame:
    """The results of every run, with the ``run`` each row comes from."""
    frames = [run.results.assign(run=run.label) for run in runs if not run.results.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS + ["run"])


# -- what distinguishes runs -------------------------------------------------------------------------

def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``teacher.epochs``); lists as JSON text, so that they fit a table cell."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def _distinguishing(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in flat.items() if k.split(".")[0] not in NOT_DISTINGUISHING}


def explaining_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """What in a ``run.json`` can make two runs compute a cell differently, as dotted keys (config keys
    without their ``config.`` prefix)."""
    flat = flatten({part: record[part] for part in EXPLAINING if part in record})
    return _distinguishing({k.removeprefix("config."): v for k, v in flat.items()})


def differing_keys(values: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys, in order of first appearance, whose value is not the same in all of ``values`` (an absent
    key counts as None)."""
    keys = dict.fromkeys(k for v in values for k in v)
    return [k for k in keys if any(v.get(k) != values[0].get(k) for v in values[1:])]


def distinguishing(runs: Sequence[Run]) -> pd.DataFrame:
    """Per run (index: its label), the config values that differ between ``runs``. Runs without a
    ``run.json`` take no part in finding them, and have none."""
    values = [_distinguishing(flatten(run.record.get("config", {}))) for run in runs]
    keys = differing_keys([v for run, v in zip(runs, values) if run.record])
    return pd.DataFrame([[v.get(k) for k in keys] for v in values], index=[run.label for run in runs],
                        columns=keys)


# -- merging results ---------------------------------------------------------------------------------

def conflicts(frame: pd.DataFrame) -> pd.DataFrame:
    """The cell, run and student key of every cell that ``frame`` (results with a ``run`` column) holds with
    more than one student key."""
    jobs = frame[CELL + ["run", "student_key"]].drop_duplicates()
    keys = jobs.groupby(CELL, sort=False, dropna=False)["student_key"].transform("nunique", dropna=False)
    return jobs[keys > 1]


def _explain(a: str, b: str, described: Mapping[str, Mapping[str, Any]]) -> str:
    if not described.get(a) or not described.get(b):
        return f"{a} and {b}: {a if not described.get(a) else b} has no run record to compare"
    keys = differing_keys([described[a], described[b]])
    if not keys:
        return (f"{a} and {b}: nothing differs in their run records (config, versions, plugins); the difference "
                "is upstream: in the data, or in an artifact a job read")
    return f"{a} and {b} differ in " + ", ".join(
        f"{k} ({described[a].get(k, 'absent')} vs {described[b].get(k, 'absent')})" for k in keys)


def conflict_message(found: pd.DataFrame, described: Mapping[str, Mapping[str, Any]]) -> str:
    """The error for the conflicts ``found`` (see :func:`conflicts`): each cell with its runs and keys, then
    what differs between each pair of conflicting runs in ``described`` (run label -> dotted values)."""
    cells, pairs = [], {}
    for (dataset, split, backbone, strategy, seed), group in found.groupby(CELL, sort=False, dropna=False):
        jobs = list(zip(group["run"], group["student_key"]))
        cells.append(f"- {dataset}/{split}/{backbone} {strategy} seed {seed}: "
                     + " vs ".join(f"{run} (student {key})" for run, key in jobs))
        pairs |= dict.fromkeys((a, b) for i, (a, ka) in enumerate(jobs) for b, kb in jobs[i + 1:] if ka != kb)
    return (f"cannot merge the runs: {len(cells)} cell(s) were computed differently in different runs (the same "
            "dataset, split, backbone, strategy and seed, with different student job keys), and one table would "
            "average two experiments; report these runs separately, or compare them with harness.api.load_runs:\n"
            + "\n".join(cells) + "\n" + "\n".join(_explain(a, b, described) for a, b in pairs))


def deduplicate(frame: pd.DataFrame, described: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """``frame`` (results with a ``run`` column) with each result that several runs computed by the same
    student job once, from the first run. Raises an :class:`SdbenchError` listing the conflicts, if any
    (explained by ``described``, see :func:`conflict_message`)."""
    found = conflicts(frame)
    if not found.empty:
        raise SdbenchError(conflict_message(found, described or {}))
    return frame.drop_duplicates(JOB, ignore_index=True)


def merged_missing(runs: Sequence[Run], results: pd.DataFrame) -> pd.DataFrame:
    """Every run's missing results, less the cells ``results`` has; each (cell, reason) once."""
    frames = [run.missing for run in runs if not run.missing.empty]
    if not frames:
        return pd.DataFrame(columns=MISSING_COLUMNS)
    missing = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
    have = set(map(tuple, results[CELL].astype(str).to_numpy()))
    return missing[[tuple(c) not in have for c in missing[CELL].astype(str).to_numpy()]].reset_index(drop=True)


# -- provenance ----------------------------------------------------------------------------------------

def _distribution(provider: str) -> str:
    """``sdbench 0.1.0`` from a provider as run.json records it, ``plugins.datasets.demo (sdbench 0.1.0)``."""
    found = re.search(r"\(([^()]*)\)\s*$", provider)
    return found[1] if found else provider


def provenance(runs: Sequence[Run], frame: pd.DataFrame) -> pd.DataFrame:
    """One row per table column and run with results in it: ``results`` (the run's primary results there),
    ``shared`` (how many of them another run computed by the same student job: counted once in the table),
    its strategies, sdbench version and git revision, the plugin distributions of the column's dataset and
    strategies, and the config values that distinguish the runs (one column each)."""
    primary = frame[frame["primary"].astype(bool)]
    primary = primary.assign(column=column_labels(primary), shared=primary.duplicated(JOB, keep=False))
    by_label, distinct = {run.label: run for run in runs}, distinguishing(runs)
    rows = []
    for (column, label), group in primary.groupby(["column", "run"], sort=False):
        record = by_label[label].record
        plugins = record.get("plugins", {})
        strategies = list(dict.fromkeys(group["strategy"]))
        providers = [plugins.get("dataset", {}).get(group["dataset"].iloc[0])] + \
            [plugins.get("strategy", {}).get(s) for s in strategies]
        rows.append({"column": column, "run": label, "results": len(group), "shared": int(group["shared"].sum()),
                     "strategies": ", ".join(strategies),
                     "sdbench": record.get("packages", {}).get("sdbench", "") if record else "no run.json",
                     "git_revision": record.get("git_revision") or "",
                     "plugins": ", ".join(sorted({_distribution(p) for p in providers if p}))}
                    | distinct.loc[label].to_dict())
    table = pd.DataFrame(rows, columns=PROVENANCE_COLUMNS + list(distinct.columns))
    return table.sort_values("column", kind="stable", ignore_index=True)


def provenance_note(table: pd.DataFrame, runs: Sequence[Run]) -> str:
    """:func:`provenance` as Markdown, for under the comparison table."""
    from tabulate import tabulate

    differing = [c for c in table.columns if c not in PROVENANCE_COLUMNS]
    caveat = (f" The runs' configs differ in {', '.join(differing)}: a cell of the table with seeds from several "
              "runs averages over those configs." if differing else "")
    return (f"**Provenance**: merged from {len(runs)} run(s): {', '.join(run.label for run in runs)}. Per column "
            "and run: its primary results, how many of them another run computed by the same student job "
            "(shared: counted once), its strategies, versions and plugin distributions, and the config values "
            f"that differ between the runs.{caveat}\n\n"
            + tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True) + "\n")


# -- teachers and sweeps -------------------------------------------------------------------------------

def write_merged_teachers(runs: Sequence[Run], out: Path) -> str | None:
    """``teacher_diagnostics.{csv,md}`` of all runs, a teacher epoch with the same numbers in several runs (the
    same teacher) once; the Markdown, one table per run, or None without teachers."""
    epochs = teacher_frame([run.path for run in runs]).drop_duplicates(TEACHER_COLUMNS, ignore_index=True)
    if epochs.empty:
        return None
    markdown = "\n".join(f"**{label}**\n\n" + render_teachers(group.drop(columns="run"))
                         for label, group in epochs.groupby("run", sort=False))
    write_teacher_tables(epochs, markdown, out)
    return markdown


def write_merged_regret(runs: Sequence[Run], out: Path, registry: Any = None) -> str | None:
    """The regret tables (:mod:`harness.science.regret`) of the sweeps of all runs, a teacher swept in several runs
    counted once (from the first, with a note); the Markdown, or None when no run has a sweep."""
    units, notes, seen = [], [], {}
    for run in runs:
        found, problems = run_dir_sweeps(run.path)
        notes += [f"{run.label}: {problem}" for problem in problems]
        for table, history in found:
            key = str(table["teacher_key"].iloc[0])
            if key in seen:
                notes.append(f"{run.label}: teacher {key} was swept in {seen[key]} too; counted once, from there")
                continue
            seen[key] = run.label
            units.append((table, history))
    return write_units_regret(units, notes, out, registry=registry)


def write_merged_report(run_dirs: Sequence[str | Path], out: Path, registry: Any = None) -> str:
    """Merge ``run_dirs`` into one report in ``out`` (a directory of its own): ``comparison.{md,csv,tex}`` with
    the provenance under the table, ``provenance.csv``, ``missing.csv``, and the teacher diagnostics and regret
    tables when the runs have them. Returns the Markdown. Raises an :class:`SdbenchError` on conflicts."""
    runs, out = open_runs(run_dirs), Path(out)
    if out.resolve() in {run.path.resolve() for run in runs} or (out / RESULTS_FILE).exists():
        raise SdbenchError(f"--out {out} is a run directory (it holds a {RESULTS_FILE}, or is one of the runs "
                           "given): a merged report goes into a directory of its own")
    parts = []
    if any((run.path / RESULTS_FILE).is_file() for run in runs):  # runs of sweeps only have no comparison
        frame = tagged(runs)
        results = deduplicate(frame, {run.label: explaining_values(run.record) for run in runs})
        missing = merged_missing(runs, results)
        table = provenance(runs, frame)
        write_missing(missing.to_dict("records"), out)
        write_text(out / PROVENANCE_FILE, table.to_csv(index=False))
        parts.append(write_tables(results.drop(columns="run"), out, missing=missing,
                                  footer=provenance_note(table, runs)))
    parts += [text for text in (write_merged_teachers(runs, out), write_merged_regret(runs, out, registry)) if text]
    return "\n".join(parts)
