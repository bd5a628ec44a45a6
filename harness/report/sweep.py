"""The teacher-epoch figure of a sweep: what the teacher does per epoch, and what its student gets from it.

Three panels over the swept teacher epochs: its training loss; its validation score next to the test score
of the students trained on its soft labels (their mean over the student seeds with a band of one standard
deviation, and every seed's score as a faint dot); and its soft-label diagnostics (fit confidence on its own
training frames, mean max-probability and calibration error on the validation frames). The best-validation
teacher is a dashed line, the best teacher (oracle: the best mean student test score) a star, and the
automatic window is shaded in every panel.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.science.sweep import seed_columns
from harness.system.atomic import write_text, write_with


def draw(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Save the figure of ``table`` (a sweep table) as ``stem.png`` and ``stem.svg``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = table["epoch"]
    metric = table["metric"].iloc[0]
    figure, (loss, scores, diagnostics) = plt.subplots(3, 1, sharex=True, figsize=(7, 8), constrained_layout=True)
    loss.plot(epochs, table["teacher_train_loss"], "o-", color="tab:gray", label="teacher training loss")
    loss.set_ylabel("training loss")
    scores.plot(epochs, 100 * table["teacher_val"], "o-", color="tab:blue", label=f"teacher validation {metric}")
    seeds = seed_columns(table, "test")
    several = len(seeds) > 1
    scores.plot(epochs, 100 * table["student_test"], "s-", color="tab:red",
                label=f"student test {metric}" + (f" (mean of {len(seeds)} seeds)" if several else ""))
    if several and "student_test_std" in table:
        low, high = table["student_test"] - table["student_test_std"], table["student_test"] + table["student_test_std"]
        scores.fill_between(epochs, 100 * low, 100 * high, color="tab:red", alpha=0.15, linewidth=0,
                            label="± std over student seeds")
        for number, column in enumerate(seeds.values()):
            scores.plot(epochs, 100 * table[column], ".", color="tab:red", alpha=0.35, markersize=5,
                        label="one student seed" if number == 0 else None)
    best = table[table["best_teacher"]].iloc[0]
    scores.plot([best["epoch"]], [100 * best["student_test"]], "*", color="black", markersize=16,
                label=f"best teacher (epoch {best['epoch']})")
    scores.set_ylabel(f"{metric} (%)")
    diagnostics.plot(epochs, table["fit_confidence"], "o-", color="tab:green", label="fit confidence (train)")
    diagnostics.plot(epochs, table["mean_max_prob"], "^-", color="tab:purple", label="mean max-probability (val)")
    diagnostics.plot(epochs, table["ece"], "v-", color="tab:orange", label="calibration error (val)")
    diagnostics.set_ylabel("soft labels")
    diagnostics.set_xlabel("teacher epoch")
    diagnostics.xaxis.set_major_locator(MaxNLocator(integer=True))
    best_val = int(table.loc[table["best_val"], "epoch"].iloc[0])
    for axis in (loss, scores, diagnostics):
        for number, epoch in enumerate(table.loc[table["in_window"], "epoch"]):
            axis.axvspan(epoch - 0.5, epoch + 0.5, color="gold", alpha=0.25, linewidth=0,
                         label="automatic window" if number == 0 else None)
        axis.axvline(best_val, color="tab:blue", linestyle="--", linewidth=1,
                     label=f"best-val teacher (epoch {best_val})")
        axis.legend(fontsize="small", loc="best")
        axis.grid(alpha=0.3)
    row = table.iloc[0]
    students = f" / {len(seeds)} student seeds" if seeds else ""
    figure.suptitle(f"{row['dataset']} / {row['split']} / {row['backbone']} / teacher seed {row['seed']}{students}")
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        write_with(path, lambda handle: figure.savefig(handle, format=path.suffix[1:], dpi=120))
    plt.close(figure)
    return paths


def write_sweep(table: pd.DataFrame, directory: Path, name: str) -> list[Path]:
    """Write ``<name>.csv`` and the teacher-epoch figure ``<name>.png`` and ``.svg``; return the paths."""
    directory = Path(directory)
    csv = directory / f"{name}.csv"
    write_text(csv, table.to_csv(index=False, float_format="%.6g"))
    return [csv, *draw(table, directory / name)]
