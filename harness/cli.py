"""The ``bench`` command line, on top of every room: each command's flags and a short handler that calls
into the room that does the work. Heavy modules are imported inside the handlers that need them, so that
``bench plugins`` and ``bench --help`` stay fast and never import torch.

This module is longer than 300 lines because it is the whole command line in one place, which is what its
reader looks for: splitting the flags of a command from its handler, or the commands into files of their
own, would scatter twenty small pieces that are read together."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from harness.config import PRECISIONS, RERUN_POLICIES
from harness.errors import SdbenchError
from harness.hooks.registry import KINDS, STRICT_ENV, check_builtin_package, get_registry
from harness.system.faults import kill_target

DEFAULT_OUT = "sdbench-runs/latest"
LOGGER_HELP = ("record the run with this experiment logger (repeatable): tensorboard, text, mlflow, wandb or a "
               "plugin's; replaces the config's loggers")
PRECISION_HELP = ("what CUDA computes in: auto (default: bf16 where the GPU has it natively, else fp16), bf16, "
                  "fp16 (with loss scaling) or fp32; the CPU always computes in fp32")
SET_HELP = ("set one config key (repeatable), e.g. teacher.epochs=40 or strategy_params.iee.low=0.4; VALUE is YAML "
            "(1e-3, [0, 1], true, {a: 1}); precedence: defaults < --config < --set (a later one wins) < the "
            "dedicated flags such as --seeds")


def _cmd_plugins(args: argparse.Namespace) -> int:
    registry = get_registry(args.strict_plugins)
    rows = []
    for kind in KINDS:
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
    for key in ("datasets", "strategies", "backbones", "seeds", "device", "precision", "executor", "rerun",
                "loggers"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.data_root:
        overrides["dataset_options"] = _data_roots(args.data_root)
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.experiments.run import Runner
    from harness.system.progress import Progress

    config = load_config(args.config, _overrides(args), args.settings or ())
    registry = get_registry(args.strict_plugins)
    runner = Runner(config, Path(args.out), registry, Progress(quiet=args.quiet))
    print(runner.describe() if args.dry_run else runner.run())
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


def _cmd_new(kind: str) -> Callable[[argparse.Namespace], int]:
    """``bench new-strategy`` or ``bench new-dataset``: scaffold a package for a plugin of ``kind``."""

    def command(args: argparse.Namespace) -> int:
        from harness.kits.scaffold import new_strategy_package
        from harness.kits.scaffold_dataset import new_dataset_package

        scaffold = {"strategy": new_strategy_package, "dataset": new_dataset_package}[kind]
        scaffold(args.name, Path(args.directory), get_registry(args.strict_plugins).names(kind))
        print(f"wrote the {kind} package '{args.name}' to {args.directory}; next: cd {args.directory} && "
              "pip install -e . && pytest")
        return 0

    return command


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report.regret import write_run_regret
    from harness.report.results import RESULTS_FILE, read_results, write_tables
    from harness.report.teachers import write_teacher_report

    if args.out is not None or len(args.run_dirs) > 1:
        from harness.report.merge import write_merged_report

        if args.out is None:
            raise SdbenchError(f"{len(args.run_dirs)} run directories are merged into a new directory: give --out DIR")
        print(write_merged_report(args.run_dirs, Path(args.out), registry=get_registry(args.strict_plugins)))
        return 0
    run_dir = Path(args.run_dirs[0])
    if (run_dir / RESULTS_FILE).is_file() or not any((run_dir / "sweep").glob("*.csv")):
        print(write_tables(read_results(run_dir), run_dir))  # a directory of sweeps only has no comparison
    teachers = write_teacher_report(run_dir)
    if teachers:
        print(teachers)
    regret = write_run_regret(run_dir, registry=get_registry(args.strict_plugins))
    if regret:
        print(regret)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from harness.config import load_config
    from harness.experiments.run import Runner
    from harness.experiments.sweep import sweep
    from harness.report.regret import registered_rules
    from harness.report.sweep import write_sweep
    from harness.science.selection import strategy_window
    from harness.science.sweep import SweepTarget, parse_epochs, student_seed, sweep_name
    from harness.system.progress import Progress

    if args.seed is not None and args.teacher_seeds:
        raise SdbenchError("give --seed or --seeds, not both")
    try:
        seeds = [int(s) for s in args.teacher_seeds.split(",")] if args.teacher_seeds else [args.seed or 0]
    except ValueError:
        raise SdbenchError(f"--seeds expects comma-separated integers, got '{args.teacher_seeds}'") from None
    epochs = parse_epochs(args.epochs) if args.epochs else None
    config = load_config(args.config, _overrides(args), args.settings or ())
    runner = Runner(config, Path(args.out), get_registry(args.strict_plugins), Progress(quiet=args.quiet))
    try:
        window = strategy_window(**config.strategy_params.get("iee", {}), registry=runner.registry)
    except (TypeError, ValueError) as exc:
        raise SdbenchError(f"strategy_params.iee: {exc}") from None
    rules = list(registered_rules(runner.registry).values())
    with runner.tracking() as loggers:
        for seed in seeds:
            target = SweepTarget(args.dataset, args.split, args.backbone or config.backbones[0], seed)
            table = sweep(runner, target, window, args.student_seeds, epochs, rules)
            name = sweep_name(target, table)
            paths = write_sweep(table, Path(args.out) / "sweep", name)
            shown = table[["epoch", "teacher_train_loss", "teacher_val", "fit_confidence", "ece", "student_test",
                           "student_test_std", "in_window", "best_val", "last", "best_teacher"]]
            students = ", ".join(str(student_seed(seed, k)) for k in range(args.student_seeds))
            print(f"teacher seed {seed}; students of seeds {students}; window: {window.describe()}")
            markdown = tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".3f")
            print(markdown)
            loggers.log_table(f"sweep {name}", markdown)
            print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from harness.runs.gc import collect, find_frame_store_garbage, find_garbage
    from harness.system.paths import sdbench_home

    garbage = []
    if args.run_dir is not None:
        run_dir = Path(args.run_dir)
        if not (run_dir / "jobs").is_dir():
            raise SdbenchError(f"{run_dir} has no jobs/ directory: is it a 'bench run' output directory?")
        garbage += find_garbage(run_dir, unfinished=args.unfinished)
    garbage += find_frame_store_garbage(sdbench_home())
    for item in garbage:
        print(f"{'would remove' if args.dry_run else 'removing'} {item.path} ({_human(item.bytes)}): {item.why}")
    total = sum(item.bytes for item in garbage)
    if args.dry_run:
        print(f"{len(garbage)} item(s), {_human(total)} would be freed; run without --dry-run to remove them")
    else:
        removed = collect(garbage)
        print(f"freed {_human(sum(item.bytes for item in removed))} in {len(removed)} item(s)"
              + (f"; {len(garbage) - len(removed)} skipped (their job was started meanwhile, or they were gone)"
                 if len(removed) < len(garbage) else ""))
    return 0


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _cmd_export(args: argparse.Namespace) -> int:
    from harness.students.export import export_model, find_student

    student = find_student(Path(args.run_dir), args.dataset, args.strategy, args.seed, args.split, args.backbone)
    for path in export_model(student, Path(args.dest)):
        print(f"wrote {path}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from harness.students.predict import write_predictions
    from harness.system.progress import Progress

    progress = Progress(quiet=args.quiet)
    count = write_predictions(Path(args.model), Path(args.path), get_registry(args.strict_plugins),
                              Path(args.out) if args.out else None, args.fps, args.device, args.batch_size,
                              args.precision, progress)
    if args.out:
        progress.line(f"wrote the probabilities of {count} frame(s) to {args.out}")
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
    run.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    run.add_argument("--set", action="append", dest="settings", metavar="KEY=VALUE", help=SET_HELP)
    run.add_argument("--data-root", action="append", metavar="NAME=PATH",
                     help="where dataset NAME's files are (repeatable); same as dataset_options.NAME.root")
    run.add_argument("--executor", help="where jobs run: local (default), ray, slurm, or a plugin's executor")
    run.add_argument("--logger", action="append", dest="loggers", metavar="NAME", help=LOGGER_HELP)
    run.add_argument("--rerun", choices=RERUN_POLICIES,
                     help="retry jobs that failed before (failed, the default), keep their failures (never), or "
                          "recompute every job (all)")
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

    report = commands.add_parser("report", help="rebuild the comparison tables of a run directory, or merge several")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a directory written by 'bench run' or 'bench sweep' (with sweeps, the regret tables "
                             "too); several are merged into one comparison, each result computed by the same job "
                             "once, and a cell computed differently by two runs is an error")
    report.add_argument("--out", help="where the merged report goes (required with several run directories): "
                                      "comparison.{md,csv,tex} with the provenance of each column, provenance.csv, "
                                      "missing.csv")
    report.set_defaults(func=_cmd_report)

    new_strategy = commands.add_parser("new-strategy", help="scaffold an installable strategy package that passes "
                                                            "the conformance tests")
    new_strategy.add_argument("name", help="the strategy's name, e.g. top-k")
    new_strategy.add_argument("directory", help="where to write the package (new or empty)")
    new_strategy.set_defaults(func=_cmd_new("strategy"))

    new_dataset = commands.add_parser("new-dataset", help="scaffold an installable dataset package that passes "
                                                          "the dataset conformance tests")
    new_dataset.add_argument("name", help="the dataset's name, e.g. my-videos")
    new_dataset.add_argument("directory", help="where to write the package (new or empty)")
    new_dataset.set_defaults(func=_cmd_new("dataset"))

    sweep = commands.add_parser("sweep", help="oracle: K students per teacher epoch; the teacher-epoch figure")
    sweep.add_argument("--dataset", required=True, help="dataset name")
    sweep.add_argument("--split", help="split or fold name (default: the dataset's first)")
    sweep.add_argument("--backbone", help="backbone (default: the config's first)")
    sweep.add_argument("--seed", type=int, help="teacher seed (default 0)")
    sweep.add_argument("--seeds", dest="teacher_seeds", metavar="SEEDS",
                       help="comma-separated teacher seeds, one sweep each (instead of --seed)")
    sweep.add_argument("--student-seeds", type=int, default=3, metavar="K",
                       help="students per teacher epoch (default 3); student k has seed teacher seed + 1000 k: "
                            "student 0 keeps the teacher's seed, as 'bench run' students do, and is shared with them")
    sweep.add_argument("--epochs", help="teacher epochs to sweep, e.g. 2,4,6 or 1-10 or 1-10:2 (default: all); the "
                                        "best-validation and the last epoch, and the epoch each window rule picks, "
                                        "are always swept (what the baselines and rules choose)")
    sweep.add_argument("--config", type=Path, help="YAML config (fit settings; the window from strategy_params.iee)")
    sweep.add_argument("--out", default=DEFAULT_OUT, help=f"run directory, shared with 'bench run' (default: {DEFAULT_OUT})")
    sweep.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    sweep.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)
    sweep.add_argument("--set", action="append", dest="settings", metavar="KEY=VALUE", help=SET_HELP)
    sweep.add_argument("--data-root", action="append", metavar="NAME=PATH", help="where dataset NAME's files are")
    sweep.add_argument("--executor", help="where the students run (default: local)")
    sweep.add_argument("--logger", action="append", dest="loggers", metavar="NAME", help=LOGGER_HELP)
    sweep.add_argument("--quiet", action="store_true", help="print only the table")
    sweep.set_defaults(func=_cmd_sweep, datasets=None, strategies=None, backbones=None, seeds=None, rerun=None)

    gc = commands.add_parser("gc", help="remove checkpoints and leftovers that no result needs")
    gc.add_argument("run_dir", nargs="?",
                    help="a directory written by 'bench run' (without it, only the frame store is cleaned)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed and the bytes freed")
    gc.add_argument("--unfinished", action="store_true",
                    help="also remove the work directories of unfinished jobs (their progress is lost)")
    gc.set_defaults(func=_cmd_gc)

    export = commands.add_parser("export", help="copy a student's model files (model.safetensors, model.json) out "
                                                "of a run; they load with timm alone")
    export.add_argument("run_dir", help="a directory written by 'bench run'")
    export.add_argument("dest", help="the directory to copy them into (made if needed)")
    export.add_argument("--dataset", required=True, help="dataset name")
    export.add_argument("--strategy", required=True, help="strategy name")
    export.add_argument("--seed", type=int, help="student seed (needed when the run has several)")
    export.add_argument("--split", help="split or fold name (needed when the run has several)")
    export.add_argument("--backbone", help="backbone as the config names it (needed when the run has several)")
    export.set_defaults(func=_cmd_export)

    predict = commands.add_parser("predict", help="class probabilities of an exported student for every frame of "
                                                  "a video or a folder of images, as CSV")
    predict.add_argument("model", help="a directory written by 'bench export', or a student's artifact directory")
    predict.add_argument("path", help="a video file, or a folder of frame images (taken in name order)")
    predict.add_argument("--fps", type=float, default=1.0, help="video frames sampled per second (default 1)")
    predict.add_argument("--out", help="the CSV file to write (default: standard output)")
    predict.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    predict.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    predict.add_argument("--batch-size", type=int, default=128, help="frames per batch (default 128)")
    predict.add_argument("--quiet", action="store_true", help="no progress lines")
    predict.set_defaults(func=_cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        check_builtin_package()  # a shadowing 'plugins' fails here in one line, not in an import deep inside
        kill_target()  # a malformed SDBENCH_KILL_AT fails here, before any work
        return args.func(args)
    except SdbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished jobs are kept; run the same command again to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
