"""Regret of the automatic window against the oracle sweep, in metric points.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/window_regret.py [--config FILE] [--datasets a,b] [--out DIR]``
(defaults: ``benchmarks/demo.yaml``, both demo datasets and every real dataset whose data is present,
``sdbench-runs/regret``).

For every dataset and seed of the config, ``bench sweep`` trains one student per teacher epoch; the
oracle is the best of them on the test videos, a choice no strategy can make. The same run directory then
runs ``best-val``, ``it``, ``iee`` and ``iese`` (teachers shared with the sweep). The regret of a strategy
is the oracle's test score minus the strategy's, averaged over seeds, in points; negative means the
strategy beat the best single teacher (ensembles can). ``best-val`` is the baseline: the last columns give
each automatic strategy's gain over it in points (its regret subtracted from best-val's).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from harness.config import load_config
from harness.plugins import get_registry
from harness.progress import Progress
from harness.runner import Runner
from harness.selection import WindowRule
from harness.sweep import SweepTarget, sweep

ROOT = Path(__file__).resolve().parent
STRATEGIES = ("best-val", "it", "iee", "iese")


def datasets_to_measure(runner: Runner, requested: str | None) -> list[str]:
    if requested:
        return requested.split(",")
    return [data.name for data, reason in runner.candidate_datasets() if reason is None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "demo.yaml")
    parser.add_argument("--datasets", help="comma-separated (default: every dataset present)")
    parser.add_argument("--out", type=Path, default=Path("sdbench-runs/regret"))
    args = parser.parse_args()

    base = load_config(args.config, {"datasets": ["all"], "strategies": list(STRATEGIES)})
    progress = Progress(quiet=True)
    runner = Runner(base, args.out, get_registry(), progress)
    window = WindowRule.from_params(**base.strategy_params.get("iee", {}))
    rows = []
    for dataset in datasets_to_measure(runner, args.datasets):
        config = dataclasses.replace(base, datasets=(dataset,))
        runner = Runner(config, args.out, get_registry(), progress)
        oracle = {}
        for seed in config.seeds:
            table = sweep(runner, SweepTarget(dataset, None, config.backbones[0], seed), window)
            oracle[seed] = table["student_test"].max()
            print(f"{dataset} seed {seed}: oracle epoch {table.loc[table['best_teacher'], 'epoch'].item()}, "
                  f"best-val epoch {table.loc[table['best_val'], 'epoch'].item()}, window "
                  f"{table.loc[table['in_window'], 'epoch'].tolist()}", flush=True)
        split = table["split"].iloc[0]
        runner.run()
        results = pd.read_csv(args.out / "results.csv")
        primary = results[results["primary"] & (results["dataset"] == dataset) & (results["split"] == split)]
        row = {"dataset": dataset, "oracle": 100 * sum(oracle.values()) / len(oracle)}
        for strategy in STRATEGIES:
            scores = primary[primary["strategy"] == strategy].set_index("seed")["value"]
            row[strategy] = 100 * sum(oracle[s] - scores[s] for s in oracle) / len(oracle)
        rows.append(row)
    table = pd.DataFrame(rows)
    for strategy in ("it", "iee", "iese"):
        table[f"{strategy} gain over best-val"] = table["best-val"] - table[strategy]
    print("\nRegret against the oracle's best teacher, in points (mean over seeds; lower is better):")
    print(tabulate(table, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
