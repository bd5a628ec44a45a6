"""Ranks, the exact sign-flip test and the bootstrap interval on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.science.statistics import bootstrap_interval, column_ranks, paired_comparison, sign_flip_p_value


def test_ranks_are_per_column_best_first_with_ties_averaged():
    stats = pd.DataFrame({"column": ["a", "a", "a", "a", "b", "b"], "mean": [3.0, 1.0, 3.0, 2.0, 5.0, 7.0]})
    assert column_ranks(stats).tolist() == [1.5, 4.0, 1.5, 3.0, 2.0, 1.0]


def test_ranks_tie_equal_means_despite_rounding_noise():
    stats = pd.DataFrame({"column": ["a", "a"], "mean": [0.1 + 0.2, 0.3]})
    assert column_ranks(stats).tolist() == [1.5, 1.5]


@pytest.mark.parametrize("differences, expected", [
    ([1.0, 2.0, 3.0], 2 / 8),           # sums +-1+-2+-3: only +6 and -6 reach |6|
    ([1.0, 2.0, 3.0, -0.5], 4 / 16),    # |sum| >= 5.5: +6.5, +5.5 and their mirrors
    ([1.0] * 6, 2 / 64),                # the smallest p-value of 6 pairs: the first below 0.05
    ([2.0, -1.0], 1.0),                 # every pattern is at least as extreme as |1|
    ([0.0, 0.0, 0.0], 1.0),
])
def test_sign_flip_p_value_is_exact(differences, expected):
    assert sign_flip_p_value(np.array(differences)) == pytest.approx(expected)


def test_sign_flip_samples_patterns_beyond_the_exact_limit():
    p = sign_flip_p_value(np.ones(20))  # exact value 2 / 2^20
    assert 0 < p < 1e-3 and p == sign_flip_p_value(np.ones(20))


def test_sign_flip_without_pairs_is_nan():
    assert np.isnan(sign_flip_p_value(np.array([])))


def test_bootstrap_interval_is_deterministic_and_brackets_the_mean():
    assert bootstrap_interval(np.array([2.0, 2.0, 2.0])) == (2.0, 2.0)
    d = np.array([1.0, 2.0, 3.0, 10.0])
    low, high = bootstrap_interval(d)
    assert (low, high) == bootstrap_interval(d)
    assert 1.0 <= low < d.mean() < high <= 10.0


def test_paired_comparison_uses_matched_split_seed_pairs_only():
    values = pd.DataFrame([
        {"strategy": "best-val", "column": "c", "split": "f1", "seed": s, "value": v}
        for s, v in [(1, 40.0), (2, 42.0), (3, 50.0)]
    ] + [
        {"strategy": "x", "column": "c", "split": "f1", "seed": s, "value": v}
        for s, v in [(0, 99.0), (1, 41.0), (2, 45.0)]
    ])
    paired = paired_comparison(values, "best-val")
    assert paired[["strategy", "pairs", "delta"]].values.tolist() == [["x", 2, 2.0]]  # (1 + 3) / 2
    assert paired["p_value"].iloc[0] == pytest.approx(0.5)  # +1, +3: |4| reached by 2 of 4 patterns


def test_paired_comparison_without_reference_is_empty():
    values = pd.DataFrame([{"strategy": "x", "column": "c", "split": "f1", "seed": 0, "value": 1.0}])
    assert paired_comparison(values, "best-val").empty
