"""``bench export``: find a run's student by its dataset, strategy and seed, and copy its model files
(:mod:`harness.train.model_files`) out of the run."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.errors import SdbenchError
from harness.runs.store import DONE
from harness.system.atomic import write_with
from harness.train.model_files import MODEL_CARD, MODEL_WEIGHTS, check_model_files


def find_student(run_dir: Path, dataset: str, strategy: str, seed: int | None = None, split: str | None = None,
                 backbone: str | None = None) -> Path:
    """The artifact directory of the one student of ``run_dir``'s results that matches; an error listing the
    choices when none or several do, or when that student predates model files."""
    from harness.report.results import RESULTS_FILE, read_results

    run_dir = Path(run_dir)
    columns = ["dataset", "split", "backbone", "strategy", "seed", "student_key"]
    students = read_results(run_dir)[columns].drop_duplicates().astype(str)
    wanted = {"dataset": dataset, "strategy": strategy, "split": split, "backbone": backbone, "seed": seed}
    chosen: list[str] = []
    for column, value in wanted.items():
        if value is None:
            continue
        narrowed = students[students[column] == str(value)]
        if narrowed.empty:
            among = f" of {', '.join(chosen)}" if chosen else ""
            there = ", ".join(dict.fromkeys(students[column])) or "none (no results)"
            raise SdbenchError(f"no student with {column} {value} in {run_dir / RESULTS_FILE}; {column} of the "
                               f"students there{among}: {there}")
        students = narrowed
        chosen.append(f"{column} {value}")
    if len(students) > 1:
        varying = [column for column in ("split", "backbone", "seed") if students[column].nunique() > 1]
        choices = "; ".join(" ".join(f"--{column} {row[column]}" for column in varying)
                            for _, row in students.iterrows())
        raise SdbenchError(f"{len(students)} students of {', '.join(chosen)} in {run_dir / RESULTS_FILE}: "
                           f"choose one with {choices}")
    directory = run_dir / "jobs" / "student" / students["student_key"].iloc[0]
    if not (directory / DONE).is_file():
        raise SdbenchError(f"the student of {', '.join(chosen)} is listed in {run_dir / RESULTS_FILE} but its "
                           f"artifact {directory} is missing or unfinished")
    missing = [name for name in (MODEL_CARD, MODEL_WEIGHTS) if not (directory / name).is_file()]
    if missing:
        raise SdbenchError(f"{directory} has no {' or '.join(missing)}: this student was trained before students "
                           "kept their model files; to get its, remove its directory and run the same 'bench run' "
                           "again, which retrains only that student")
    return directory


def export_model(directory: Path, dest: Path) -> list[Path]:
    """Copy the model files of ``directory`` into the directory ``dest`` (made if needed), each atomically;
    the paths written."""
    check_model_files(directory)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise SdbenchError(f"{dest} is a file: expected a directory to export the model into")
    written = []
    for name in (MODEL_WEIGHTS, MODEL_CARD):
        with open(Path(directory) / name, "rb") as source:
            write_with(dest / name, lambda handle: shutil.copyfileobj(source, handle))
        written.append(dest / name)
    return written
