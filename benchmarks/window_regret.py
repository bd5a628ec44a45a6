"""Regret of the window rules and baselines (and optionally of ensemble strategies) against a multi-seed oracle sweep.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/window_regret.py [--config FILE] [--datasets a,b]
[--student-seeds K] [--epochs 1-14:2] [--all-splits] [--strategies iee,iese] [--out DIR]``
(defaults: ``benchmarks/demo.yaml``, ``demo-triplets,demo-phases``, 3 student seeds, every teacher epoch,
each dataset's first split, no strategy, ``sdbench-runs/regret``). Any registered dataset works, a
third-party plugin's included.

For every dataset and every teacher seed of the config (first backbone), the sweep of ``bench sweep``
trains the teacher and K students per swept teacher epoch (student seeds teacher seed + 1000 k; with
``--epochs`` only those epochs, plus the best-validation and the last one and the epoch each compared rule
picks). The oracle of a sweep is the epoch whose students have the best mean test score. Then, without
training anything, every registered window rule (with its default parameters; plus the config's window,
``strategy_params.iee``, when it sets one) is scored by its ``it`` choice, the best-validation epoch
inside its window, next to the baselines ``best-val`` and ``last``: regret = oracle mean minus the mean
student test score of the chosen epoch, in points, with a 95% bootstrap interval over the student seeds; a
choice whose epoch was not swept is reported missing. ``--strategies`` also trains the named strategies'
students with the same K student seeds (teachers shared with the sweep) and scores them against the same
oracle; an ensemble can have a negative regret (it beat every single teacher). Definitions and intervals:
:mod:`harness.report.regret`.

It prints the per-(dataset, split, teacher seed) regrets and the rule x dataset table (mean over splits
and teacher seeds +- 95% t-interval, and the mean over datasets; lower is better), and writes them as
``window_regret.csv`` (per sweep), ``window_regret_summary.csv`` (rule x dataset) and ``window_regret.md``
into ``--out``, next to the sweeps (``sweep/``). ``--out`` is an ordinary run directory: ``bench report``
rebuilds the rule and baseline tables (``regret.*``, without the strategies and the config's window) from
its sweeps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.config import RunConfig, load_config
from harness.errors import SdbenchError
from harness.experiments.run import Runner
from harness.experiments.sweep import sweep
from harness.hooks.registry import Registry, get_registry
from harness.report.regret import registered_rules, write_regret
from harness.report.sweep import write_sweep
from harness.runs.plan import Cell
from harness.science.regret import regret_table
from harness.science.selection import WindowRule, strategy_window
from harness.science.sweep import BASELINES, SweepTarget, parse_epochs, student_seed, sweep_name
from harness.system.progress import Progress
from harness.train.history import TeacherHistory

ROOT = Path(__file__).resolve().parent
DATASETS = "demo-triplets,demo-phases"
NAME = "window_regret"


def rules_to_compare(config: RunConfig, registry: Registry) -> tuple[dict[str, WindowRule], WindowRule]:
    """Every registered window rule (default parameters), plus the config's sweep window when it is another
    one; and that sweep window (``strategy_params.iee``), which the sweep tables mark."""
    rules = registered_rules(registry)
    params = dict(config.strategy_params.get("iee", {}))
    window = strategy_window(**params, registry=registry)
    if params and all(rule.key() != window.key() for rule in rules.values()):
        rules[f"config: {window.describe()}"] = window
    return rules, window


def strategy_students(runner: Runner, cell: Cell, teachers: dict[int, tuple[str, TeacherHistory]],
                      student_seeds: int) -> dict[int, dict[str, dict[int, float]]]:
    """Train (or reuse) the students of the config's strategies for every teacher seed of ``cell`` with the
    sweep's student seeds; their test scores by teacher seed, strategy and student seed."""
    metric = cell.data.dataset.primary_metric
    jobs = {}
    for name, strategy in runner.plan.resolve_strategies().items():
        for seed in teachers:
            key, digest, _ = runner.soft_labels(name, strategy, seed, teachers)
            for k in range(student_seeds):
                jobs[seed, name, student_seed(seed, k)] = runner.plan.student_job(cell, student_seed(seed, k), key,
                                                                             digest, name)
    outcomes = runner.schedule(jobs.values())
    scores: dict[int, dict] = {seed: {} for seed in teachers}
    for (seed, name, student), job in jobs.items():
        by_seed = scores[seed].setdefault(name, {})
        if outcomes[job.key].ok:
            metrics = json.loads((runner.store.path("student", job.key) / "metrics.json").read_text())
            by_seed[student] = metrics["test"][metric]
        else:
            print(f"  {name} student seed {student} failed: {outcomes[job.key].error}", flush=True)
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "demo.yaml")
    parser.add_argument("--datasets", default=DATASETS, help=f"comma-separated dataset names (default: {DATASETS})")
    parser.add_argument("--student-seeds", type=int, default=3, metavar="K", help="students per teacher epoch (3)")
    parser.add_argument("--epochs", help="teacher epochs to sweep, e.g. 1-14:2 (best-val and last always included)")
    parser.add_argument("--all-splits", action="store_true", help="sweep every split (default: the first)")
    parser.add_argument("--strategies", default="", help="also score these strategies' students, e.g. iee,iese")
    parser.add_argument("--out", type=Path, default=Path("sdbench-runs/regret"))
    args = parser.parse_args()

    names = [s for s in args.strategies.split(",") if s]
    if set(names) & set(BASELINES):
        raise SdbenchError(f"--strategies: {', '.join(BASELINES)} are always scored, from the sweep")
    config = load_config(args.config, {"strategies": names} if names else None)
    registry = get_registry()
    runner = Runner(config, args.out, registry, Progress(quiet=True))
    epochs = parse_epochs(args.epochs) if args.epochs else None
    rules, window = rules_to_compare(config, registry)
    backbone = config.backbones[0]
    units, strategy_scores = [], []
    for dataset in (d for d in args.datasets.split(",") if d):
        data = runner.plan.ready(runner.plan.dataset(dataset), runner.plan.dataset(dataset).dataset.availability())
        for split in list(data.splits) if args.all_splits else [None]:
            teachers = {}
            for seed in config.seeds:
                target = SweepTarget(dataset, split, backbone, seed)
                table = sweep(runner, target, window, args.student_seeds, epochs, rules.values())
                write_sweep(table, args.out / "sweep", sweep_name(target, table))
                key = table["teacher_key"].iloc[0]
                teachers[seed] = (key, TeacherHistory(runner.store.path("teacher", key) / "history"))
                units.append((table, teachers[seed][1]))
                print(f"{dataset} / {table['split'].iloc[0]} / teacher seed {seed}: swept epochs "
                      f"{table['epoch'].tolist()} x {args.student_seeds} students, oracle epoch "
                      f"{table.loc[table['best_teacher'], 'epoch'].item()}", flush=True)
            if names:
                cell = runner.plan.cell(dataset, table["split"].iloc[0], backbone)
                scores = strategy_students(runner, cell, teachers, args.student_seeds)
                strategy_scores += [scores[seed] for seed in config.seeds]
            else:
                strategy_scores += [None] * len(config.seeds)
    frame = regret_table(units, rules, strategy_scores)
    print()
    print(write_regret(frame, args.out, NAME))
    print("wrote " + ", ".join(str(args.out / f"{NAME}{suffix}") for suffix in (".csv", "_summary.csv", ".md")))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SdbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
