"""The ``bench`` command line. Heavy modules are imported inside the commands that need them, so that
``bench plugins`` and ``bench --help`` stay fast and never import torch."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from harness.errors import SdbenchError
from harness.plugins import STRICT_ENV, get_registry

DEFAULT_OUT = "sdbench-runs/latest"


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry(args.strict_plugins)
    rows = []
    for kind in ("dataset", "backbone", "strategy"):
        for name, reg in registry.all(kind).items():
            aliases = getattr(reg.spec, "aliases", {})
            description = reg.spec.description + (f" (aliases: {', '.join(aliases)})" if aliases else "")
            rows.append((kind, name, f"{reg.provider.distribution} {reg.provider.version}", description))
    widths = [max(len(r[i]) for r in rows + [("KIND", "NAME", "PROVIDED BY", "")]) for i in range(3)]
    print(f"{'KIND':<{widths[0]}}  {'NAME':<{widths[1]}}  {'PROVIDED BY':<{widths[2]}}  DESCRIPTION")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    return 0


def _overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    for key in ("datasets", "strategies", "backbones", "seeds", "device"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.progress import Progress
    from harness.runner import Runner

    config = load_config(args.config, _overrides(args))
    registry = get_registry(args.strict_plugins)
    table = Runner(config, Path(args.out), registry, Progress(quiet=args.quiet)).run()
    print(table)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.results import read_results, write_tables

    run_dir = Path(args.run_dir)
    print(write_tables(read_results(run_dir), run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Self-distillation teacher benchmark for surgical video.")
    parser.add_argument("--strict-plugins", action="store_true", default=None,
                        help=f"a plugin that fails to load is an error, not a warning (also: {STRICT_ENV}=1)")
    commands = parser.add_subparsers(dest="command", required=True)

    plugins = commands.add_parser("plugins", help="list installed datasets, backbones and strategies")
    plugins.set_defaults(func=_cmd_plugins)

    run = commands.add_parser("run", help="train teachers and students across the cross-product; write tables")
    run.add_argument("--datasets", help="comma-separated dataset names, or 'all' (default: all)")
    run.add_argument("--strategies", help="comma-separated strategy names, or 'all' (default: all)")
    run.add_argument("--backbones", help="comma-separated backbones: aliases (tiny, swin-b) or timm:<arch>")
    run.add_argument("--seeds", help="comma-separated seeds (default: 0,1,2)")
    run.add_argument("--config", type=Path, help="YAML config file (see benchmarks/demo.yaml)")
    run.add_argument("--out", default=DEFAULT_OUT, help=f"run directory (default: {DEFAULT_OUT})")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--quiet", action="store_true", help="print only the final table")
    run.set_defaults(func=_cmd_run)

    report = commands.add_parser("report", help="rebuild the comparison tables of a run directory")
    report.add_argument("run_dir", help="a directory written by 'bench run'")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SdbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished jobs are kept; run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
