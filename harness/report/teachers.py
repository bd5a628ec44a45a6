"""The per-teacher-epoch table of a run directory: training loss, validation score and soft-label
diagnostics of every epoch of every teacher, rebuilt from the stored histories alone.

Teachers live at ``<run>/jobs/teacher/<key>/``: ``done.json`` holds the job's configuration (dataset, split,
backbone, seed) and ``history/`` the :class:`~harness.train.history.TeacherHistory`. Directories without
``done.json`` are unfinished jobs and are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from harness.science.selection import best_val_epoch
from harness.system.atomic import write_text
from harness.train.history import TeacherHistory

TABLE_NAME = "teacher_diagnostics"
COLUMNS = ["dataset", "split", "backbone", "seed", "epoch", "train_loss", "val_metric", "val_score",
           "best_val", "mean_max_prob", "mean_entropy", "ece"]


def teacher_epochs(run_dir: Path) -> pd.DataFrame:
    """One row per finished teacher epoch of ``run_dir`` (columns ``COLUMNS``; scores are fractions)."""
    rows = []
    for done in sorted(Path(run_dir).glob("jobs/teacher/*/done.json")):
        if done.parent.name.startswith("."):  # a work directory or a set-aside artifact, not a finished job
            continue
        job, history = json.loads(done.read_text())["job"], TeacherHistory(done.parent / "history")
        best = best_val_epoch(history) if history.epochs else None
        for epoch in history.epochs:
            rows.append({"dataset": job["dataset"], "split": job["split"][0], "backbone": job["backbone"],
                         "seed": job["seed"], "epoch": epoch, "train_loss": history.train_loss(epoch),
                         "val_metric": history.primary_metric, "val_score": history.val_score(epoch),
                         "best_val": epoch == best} | history.diagnostics(epoch))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["dataset", "split", "backbone", "seed", "epoch"], ignore_index=True)


def render_markdown(epochs: pd.DataFrame) -> str:
    from tabulate import tabulate

    shown = pd.DataFrame({
        "dataset": epochs["dataset"], "split": epochs["split"], "backbone": epochs["backbone"],
        "seed": epochs["seed"], "epoch": [f"{e}*" if b else str(e) for e, b in zip(epochs["epoch"], epochs["best_val"])],
        "train loss": epochs["train_loss"].map("{:.4f}".format),
        "val (%)": [f"{100 * v:.1f} {m}" for v, m in zip(epochs["val_score"], epochs["val_metric"])],
        "max-prob": epochs["mean_max_prob"].map("{:.3f}".format),
        "entropy": epochs["mean_entropy"].map("{:.3f}".format),
        "ECE": epochs["ece"].map("{:.3f}".format),
    })
    caption = ("Teacher epochs on the validation frames: mean max-probability, mean entropy (nats) and expected "
               "calibration error (15 bins) of the soft labels; * = best validation epoch of the run.")
    return tabulate(shown, headers="keys", tablefmt="github", showindex=False, disable_numparse=True) + \
        f"\n\n{caption}\n"


def write_teacher_report(run_dir: Path) -> str | None:
    """Write ``teacher_diagnostics.{csv,md}`` into ``run_dir`` and return the Markdown; None without teachers."""
    epochs = teacher_epochs(run_dir)
    if epochs.empty:
        return None
    markdown = render_markdown(epochs)
    write_teacher_tables(epochs, markdown, Path(run_dir))
    return markdown


def write_teacher_tables(epochs: pd.DataFrame, markdown: str, directory: Path) -> None:
    """``teacher_diagnostics.csv`` (the rows of ``epochs``) and ``teacher_diagnostics.md`` (``markdown``)."""
    write_text(directory / f"{TABLE_NAME}.csv", epochs.to_csv(index=False, float_format="%.6f"))
    write_text(directory / f"{TABLE_NAME}.md", markdown)


def teacher_frame(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """:func:`teacher_epochs` of every run, with the ``run`` each row comes from."""
    frames = [teacher_epochs(Path(d)).assign(run=str(Path(d))) for d in run_dirs]
    frames = [f for f in frames if not f.empty]
    columns = ["run"] + COLUMNS
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
