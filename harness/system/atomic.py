"""Atomic file writes: readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.errors import SdbenchError
from harness.system.faults import kill_point
from harness.system.locks import fsync_directory

if TYPE_CHECKING:
    import pandas as pd


DISK_FULL = {errno.ENOSPC: "the disk is full (ENOSPC)", errno.EDQUOT: "the disk quota is exceeded (EDQUOT)"}


def write_with(path: Path, write: Callable[[IO], Any], mode: str = "wb") -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file in the same directory, rename it into
    place and make the rename durable. A full disk or quota removes the temporary file and raises an
    :class:`SdbenchError` saying so (what finished before stays, complete)."""
    try:
        _write_and_rename(path, write, mode)
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise SdbenchError(f"cannot write {path}: {DISK_FULL[exc.errno]}; the file is left as it was and everything "
                           "finished before is kept; free some space and run the same command again") from exc
    fsync_directory(path.parent)


def _write_and_rename(path: Path, write: Callable[[IO], Any], mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point("atomic-write")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_with(Path(path), lambda f: json.dump(data, f, indent=2, sort_keys=True, default=str), "w")


def write_text(path: Path, text: str) -> None:
    write_with(Path(path), lambda f: f.write(text), "w")


def write_npy(path: Path, array: np.ndarray) -> None:
    write_with(Path(path), lambda f: np.save(f, array, allow_pickle=False), "wb")


def write_rows(path: Path, rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> "pd.DataFrame":
    """Write ``rows`` as a CSV file with exactly ``columns``; return them as a data frame."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(columns))
    write_text(path, frame.to_csv(index=False))
    return frame


def generated_directory_is_current(root: Path, fingerprint: str, marker: str = "COMPLETE") -> bool:
    """``root`` was generated completely, by the generator whose fingerprint is ``fingerprint``."""
    path = Path(root) / marker
    return path.is_file() and path.read_text() == fingerprint


def generate_directory(root: Path, fingerprint: str, generate: Callable[[Path], Any],
                       marker: str = "COMPLETE") -> None:
    """Generate a whole directory atomically, unless ``root`` already holds this generator's output.

    ``generate(staging)`` writes into a temporary directory beside ``root``; the ``marker`` file holding
    ``fingerprint`` is written last, and the directory is renamed into place (replacing an outdated one).
    When another process finishes first, its directory is kept. For generated datasets (the demos, a
    third-party synthetic dataset): a killed generation leaves only a temporary directory behind."""
    root = Path(root)
    if generated_directory_is_current(root, fingerprint, marker):
        return
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.", suffix=".tmp"))
    try:
        generate(staging)
        (staging / marker).write_text(fingerprint)
        if generated_directory_is_current(root, fingerprint, marker):
            return
        shutil.rmtree(root, ignore_errors=True)
        os.rename(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
