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


def _data_roots(pairs: Sequence[str]) -> dict:
    """``--data-root NAME=PATH`` flags as ``dataset_options`` overrides."""
    options = {}
    for pair in pairs or ():
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SdbenchError(f"--data-root expects NAME=PATH, got '{pair}'")
        options[name] = {"root": path}
    return options


def _overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    for key in ("datasets", "strategies", "backbones", "seeds", "device"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.data_root:
        overrides["dataset_options"] = _data_roots(args.data_root)
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.progress import Progress
    from harness.runner import Runner

    config = load_config(args.config, _overrides(args))
    registry = get_registry(args.strict_plugins)
    runner = Runner(config, Path(args.out), registry, Progress(quiet=args.quiet))
    print(runner.plan() if args.dry_run else runner.run())
    return 0


def _dataset(args: argparse.Namespace):
    from harness.config import load_config

    config = load_config(args.config)
    options = dict(config.dataset_options.get(args.name, {}))
    if getattr(args, "root", None):
        options["root"] = args.root
    return get_registry(args.strict_plugins).get("dataset", args.name).factory(options)


def _cmd_data_synth(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if directory.exists() and any(directory.iterdir()):
        raise SdbenchError(f"{directory} is not empty: synthesize into a new directory")
    args.root = str(directory)
    _dataset(args).synthesize(directory)
    print(f"wrote a {args.name} look-alike to {directory}; check it with: bench data check {args.name} --root {directory}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    reason = dataset.availability()
    problems = [reason] if reason else dataset.check()
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{args.name}: {len(problems)} problem(s)" if problems else f"{args.name}: no problems found")
    return 1 if problems else 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from harness.data.info import describe

    dataset = _dataset(args)
    reason = dataset.availability()
    if reason:
        raise SdbenchError(f"dataset {args.name} is not available: {reason}")
    dataset.prepare()
    print(describe(dataset))
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
    run.add_argument("--data-root", action="append", metavar="NAME=PATH",
                     help="where dataset NAME's files are (repeatable); same as dataset_options.NAME.root")
    run.add_argument("--dry-run", action="store_true", help="list the jobs and their cost; train nothing")
    run.add_argument("--quiet", action="store_true", help="print only the final table")
    run.set_defaults(func=_cmd_run)

    data = commands.add_parser("data", help="synthesize, check or describe a dataset on disk")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="write a small look-alike of dataset NAME in its official layout")
    synth.add_argument("name")
    synth.add_argument("directory")
    synth.set_defaults(func=_cmd_data_synth)
    check = data_commands.add_parser("check", help="validate a dataset directory and list every problem")
    info = data_commands.add_parser("info", help="videos, frames, class frequencies and split sizes")
    for sub, func in ((check, _cmd_data_check), (info, _cmd_data_info)):
        sub.add_argument("name")
        sub.add_argument("--root", help="the dataset directory (default: from the config or environment)")
        sub.set_defaults(func=func)
    for sub in (synth, check, info):
        sub.add_argument("--config", type=Path, help="YAML config whose dataset_options apply")

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
