"""Atomic file writes: readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.faults import kill_point

if TYPE_CHECKING:
    import pandas as pd


def write_with(path: Path, write: Callable[[IO], Any], mode: str = "wb") -> None:
    """Write ``path`` through ``write(handle)`` into a temporary file in the same directory, then rename."""
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
