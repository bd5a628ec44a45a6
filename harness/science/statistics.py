"""Statistics for the comparison tables: ranks, and a paired comparison against a reference strategy.

Paired comparison. A strategy and the reference (``best-val``) are compared on the (split, seed) pairs where
both have a result in the same table column, so fold and seed effects cancel. The test is the two-sided
**exact sign-flip permutation test** of the mean paired difference: under the null hypothesis each
difference is as likely positive as negative, so the p-value is the fraction of the ``2^n`` sign patterns
whose mean difference is at least as large in absolute value as the observed one. It assumes nothing about
the distribution of the differences (unlike a t-test) and is exact for small n, which is what a benchmark
with 3-15 pairs per cell has. Beyond ``EXACT_LIMIT`` pairs the patterns are sampled (fixed seed).
Note its resolution: with n pairs the smallest p-value is ``2 / 2^n``, so at least 6 pairs are needed to
reach p < 0.05. Next to it, a percentile bootstrap confidence interval of the mean difference (pairs
resampled with a fixed seed) describes the size of the effect; the flag in the table comes from the test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

EXACT_LIMIT = 16
SAMPLED_PATTERNS = 20_000
BOOTSTRAP_RESAMPLES = 10_000
SEED = 0


def column_ranks(stats: pd.DataFrame) -> pd.Series:
    """The rank of each row's ``mean`` within its ``column`` (1 = highest, ties get the average rank).

    Means are rounded to 1e-9 first, so that equal results computed in a different order still tie."""
    return stats["mean"].round(9).groupby(stats["column"]).rank(ascending=False, method="average")


def sign_flip_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of the exact sign-flip permutation test of ``mean(differences) == 0``."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return float("nan")
    if d.size <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    else:
        signs = np.random.default_rng(SEED).choice((1.0, -1.0), size=(SAMPLED_PATTERNS, d.size))
        signs[0] = 1.0  # the observed pattern is always one of the permutations
    observed = abs(d.sum())
    return float(np.mean(np.abs(signs @ d) >= observed - 1e-9 * max(1.0, observed)))


def bootstrap_interval(differences: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``differences`` (resampled with a fixed seed)."""
    d = np.asarray(differences, dtype=np.float64)
    if d.size == 0:
        return float("nan"), float("nan")
    draws = np.random.default_rng(SEED).integers(0, d.size, size=(BOOTSTRAP_RESAMPLES, d.size))
    means = d[draws].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_comparison(values: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each strategy against ``reference``, per column, over matched (split, seed) pairs.

    ``values`` has columns strategy, column, split, seed, value. Returns one row per (strategy, column) other
    than the reference with pairs, delta (mean of strategy - reference), ci_low, ci_high and p_value; empty
    when the reference has no results."""
    keys = ["column", "split", "seed"]
    per_pair = values.groupby(["strategy"] + keys, sort=False)["value"].mean().reset_index()
    base = per_pair[per_pair["strategy"] == reference].drop(columns="strategy")
    matched = per_pair[per_pair["strategy"] != reference].merge(base, on=keys, suffixes=("", "_reference"))
    rows = []
    for (strategy, column), group in matched.groupby(["strategy", "column"], sort=False):
        d = (group["value"] - group["value_reference"]).to_numpy()
        low, high = bootstrap_interval(d)
        rows.append({"strategy": strategy, "column": column, "pairs": len(d), "delta": float(d.mean()),
                     "ci_low": low, "ci_high": high, "p_value": sign_flip_p_value(d)})
    return pd.DataFrame(rows, columns=["strategy", "column", "pairs", "delta", "ci_low", "ci_high", "p_value"])
