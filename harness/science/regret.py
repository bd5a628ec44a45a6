"""Regret of teacher choices against the oracle sweep, with confidence intervals, in points (x100).

Everything here reads sweep tables (:mod:`harness.science.sweep`) and teacher histories; nothing is trained, and
only numpy and pandas are used. Scores and regrets are in points (fractions x 100) throughout.

**One unit** is one sweep: a dataset, split, backbone and teacher seed, whose K student seeds were trained
on the soft labels of every swept teacher epoch. Let ``S[e, k]`` be the test score of student seed ``k``
of teacher epoch ``e`` and ``m[e]`` its mean over the K seeds. The oracle is ``max_e m[e]``: the best
teacher, chosen on the test videos, which no strategy may do. A *choice* is

- a window rule ``R``: its ``it`` choice, the best-validation epoch inside its window,
  ``best_val_epoch(history, R.window(history))``;
- the baselines ``best-val`` (the best-validation epoch) and ``last`` (the last epoch);
- a strategy's own students (an ensemble's soft labels), with the same K student seeds.

``regret = oracle - m[chosen epoch]`` (or ``oracle - mean of the strategy's K students``): zero when the
choice is the best teacher, positive otherwise; a strategy can be negative (it beat every single teacher).
An epoch choice whose epoch was not swept (``bench sweep --epochs``) is reported missing, never guessed.

**Its confidence interval** is a bootstrap over the student seeds: each of ``RESAMPLES`` draws takes K
seed indices with replacement, the same indices for every epoch (and for the strategy's students, which
share the seeds: the comparison stays paired); each draw recomputes the epoch means, re-takes the oracle
max and recomputes the regret; the interval is the 2.5 and 97.5 percentiles of the draws (fixed RNG seed,
so reports are reproducible). Beware: the plug-in oracle ``max_e m[e]`` is biased upward with few seeds
(the max of noisy means picks the luckiest epoch), so regrets are biased upward too, even that of the
true best epoch; re-taking the max in each draw carries this selection effect into the interval, it does
not remove it. With one student seed there is nothing to resample and the interval is the point.

**Per dataset** (and backbone), the unit regrets are averaged over splits and teacher seeds, with a 95%
Student-t interval over the units, ``mean +- t(0.975, n-1) s / sqrt(n)``; it holds the student-seed noise
of each unit as well as the variation between teachers and splits. One unit gives no interval. The
**mean over datasets** is the mean of the per-dataset means; its interval combines their standard errors,
``se = sqrt(sum se_d^2) / D``, with Welch-Satterthwaite degrees of freedom (the datasets are fixed, not
sampled). t quantiles come from a table (``T_975``), rounded down to the next tabulated degrees of
freedom, which only widens the interval; beyond 120 degrees of freedom the normal quantile 1.960 is used,
which narrows it by less than 1%.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.science.sweep import BASELINES, HasWindow, choices, seed_columns
from harness.train.history import TeacherHistory

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
TABLE_NAME = "regret"
OVERALL = "mean over datasets"

UNIT_COLUMNS = ["dataset", "split", "backbone", "seed", "metric", "students", "rule", "kind", "epoch",
                "oracle_epoch", "oracle", "score", "regret", "ci_low", "ci_high", "missing"]
"""The per-unit table: ``seed`` is the teacher's, ``students`` the number of student seeds K, ``epoch`` the
chosen teacher epoch (empty for a strategy), ``oracle``/``score``/``regret``/``ci_*`` in points, ``missing``
why the regret could not be read from the sweep (empty when it could)."""

TEXT_COLUMNS = dict.fromkeys(("dataset", "split", "backbone", "teacher_key", "metric"), str)
"""Read as text from a sweep CSV: a teacher key (a hex digest) or a split name can be all digits."""

SUMMARY_COLUMNS = ["rule", "kind", "column", "dataset", "backbone", "n", "missing", "mean", "std", "se",
                   "ci_low", "ci_high"]

T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
         19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
         28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}
"""The 97.5% quantile of Student's t by degrees of freedom (1.960 beyond 120)."""


def t_975(df: float) -> float:
    """The 97.5% t quantile for ``df`` degrees of freedom, at the largest tabulated df <= ``df``."""
    if not df >= 1:
        return math.nan
    return T_975[max(d for d in T_975 if d <= df)] if df < 121 else 1.960


# -- one unit -------------------------------------------------------------------------------------

def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return float(low), float(high)


def unit_regret(table: pd.DataFrame, chosen: Mapping[str, int | str],
                strategies: Mapping[str, Mapping[int, float]] | None = None,
                kinds: Mapping[str, str] | None = None, resamples: int = RESAMPLES, level: float = LEVEL,
                seed: int = SEED) -> pd.DataFrame:
    """The regret of every choice of one sweep ``table``, with its bootstrap interval (columns
    :data:`UNIT_COLUMNS`, points).

    ``chosen`` maps a name to the chosen teacher epoch (or to why there is none); ``strategies`` maps a name
    to its students' test scores (fractions) by student seed, which must be the sweep's seeds. ``kinds``
    labels the names (default: ``baseline`` for best-val and last, ``rule`` for the other epoch choices,
    ``strategy`` for strategies)."""
    seeds = seed_columns(table, "test")
    if not seeds:
        raise ValueError("the sweep table has no per-seed student_test_seed<S> columns (a sweep written "
                         "before multi-seed sweeps: run 'bench sweep' again)")
    epochs = table["epoch"].astype(int).tolist()
    scores = 100 * table[list(seeds.values())].to_numpy(dtype=np.float64)  # (E, K)
    k = scores.shape[1]
    means = scores.mean(axis=1)
    oracle_row = int(np.argmax(means))  # the earliest epoch on ties, as the sweep marks it
    if k > 1:
        draws_idx = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
        draws = scores[:, draws_idx].mean(axis=2)  # (E, B): every epoch's mean under the same seed draw
        oracle_draws = draws.max(axis=0)
    first = table.iloc[0]
    base = {"dataset": first["dataset"], "split": first["split"], "backbone": first["backbone"],
            "seed": int(first["seed"]), "metric": first["metric"], "students": k,
            "oracle_epoch": epochs[oracle_row], "oracle": float(means[oracle_row])}
    kinds = dict(kinds or {})
    rows = []

    def add(name: str, kind: str, epoch: Any, score: float, regret_draws: np.ndarray | None, missing: str = ""):
        regret = float(means[oracle_row] - score) if not missing else math.nan
        if missing:
            low = high = math.nan
        elif regret_draws is None:
            low = high = regret
        else:
            low, high = _interval(regret_draws, level)
        rows.append(base | {"rule": name, "kind": kinds.get(name, kind), "epoch": epoch, "score": score,
                            "regret": regret, "ci_low": low, "ci_high": high, "missing": missing})

    for name, epoch in chosen.items():
        kind = "baseline" if name in BASELINES else "rule"
        if isinstance(epoch, str):
            add(name, kind, math.nan, math.nan, None, epoch)
        elif int(epoch) not in epochs:
            add(name, kind, int(epoch), math.nan, None, f"epoch {int(epoch)} was not swept")
        else:
            row = epochs.index(int(epoch))
            add(name, kind, int(epoch), float(means[row]), oracle_draws - draws[row] if k > 1 else None)
    for name, by_seed in (strategies or {}).items():
        absent = [s for s in seeds if s not in by_seed or not np.isfinite(by_seed[s])]
        if absent:
            add(name, "strategy", math.nan, math.nan, None, f"no student of seed(s) {absent}")
            continue
        own = 100 * np.array([by_seed[s] for s in seeds], dtype=np.float64)
        add(name, "strategy", math.nan, float(own.mean()),
            oracle_draws - own[draws_idx].mean(axis=1) if k > 1 else None)
    frame = pd.DataFrame(rows, columns=UNIT_COLUMNS)
    frame["epoch"] = frame["epoch"].astype("Int64")
    return frame


def regret_table(units: Sequence[tuple[pd.DataFrame, TeacherHistory]], rules: Mapping[str, HasWindow],
                 strategies: Sequence[Mapping[str, Mapping[int, float]]] | None = None,
                 **options: Any) -> pd.DataFrame:
    """:func:`unit_regret` of every (sweep table, teacher history) pair, the choices of ``rules`` and the
    baselines read from the history; ``strategies[i]`` are the strategy scores of unit ``i``."""
    frames = [unit_regret(table, choices(history, rules), (strategies or [None] * len(units))[i], **options)
              for i, (table, history) in enumerate(units)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=UNIT_COLUMNS)


# -- aggregation ------------------------------------------------------------------------------------

def _column(dataset: str, backbone: str, metric: str, several_backbones: bool) -> str:
    return f"{dataset} [{backbone}] ({metric})" if several_backbones else f"{dataset} ({metric})"


def t_interval(values: Sequence[float], level: float = LEVEL) -> dict[str, float]:
    """Mean, std, standard error and 95% t-interval of ``values`` (NaN interval for fewer than two)."""
    if level != LEVEL:
        raise ValueError("only 95% t-intervals are tabulated")
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    se = std / math.sqrt(n) if n > 1 else math.nan
    half = t_975(n - 1) * se if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "se": se, "ci_low": mean - half, "ci_high": mean + half}


def summary(units: pd.DataFrame) -> pd.DataFrame:
    """Per rule and dataset (and backbone): the mean regret over the units (splits x teacher seeds) with its
    t-interval, and per rule the mean over datasets (column :data:`OVERALL`); columns
    :data:`SUMMARY_COLUMNS`, points. ``n`` counts the units with a regret, ``missing`` those without."""
    if units.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    several = units["backbone"].nunique() > 1
    rows = []
    for (rule, dataset, backbone), group in units.groupby(["rule", "dataset", "backbone"], sort=False):
        found = group["regret"].dropna()
        rows.append({"rule": rule, "kind": group["kind"].iloc[0], "dataset": dataset, "backbone": backbone,
                     "column": _column(dataset, backbone, group["metric"].iloc[0], several),
                     "missing": int(group["regret"].isna().sum())} | t_interval(found.to_numpy()))
    per_dataset = pd.DataFrame(rows)
    columns = per_dataset["column"].nunique()
    for rule, group in per_dataset.groupby("rule", sort=False):
        complete = len(group) == columns and (group["n"] > 0).all()
        mean = float(group["mean"].mean()) if complete else math.nan
        se = math.sqrt((group["se"] ** 2).sum(skipna=False)) / len(group) if complete else math.nan
        if complete and len(group) == 1:
            df = group["n"].iloc[0] - 1
        elif complete and se > 0:  # Welch-Satterthwaite
            d = len(group)
            df = se ** 4 / sum((s / d) ** 4 / (n - 1) for s, n in zip(group["se"], group["n"]))
        else:
            df = math.nan
        half = 0.0 if se == 0 else t_975(df) * se
        rows.append({"rule": rule, "kind": group["kind"].iloc[0], "column": OVERALL, "dataset": OVERALL,
                     "backbone": "", "n": int(group["n"].sum()), "missing": int(group["missing"].sum()),
                     "mean": mean, "std": math.nan, "se": se, "ci_low": mean - half, "ci_high": mean + half})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
