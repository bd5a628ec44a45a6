"""Atomic file writes: readers see the old file or the complete new one, never a partial one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _replace_with(path: Path, write: Any, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _replace_with(Path(path), lambda f: json.dump(data, f, indent=2, sort_keys=True, default=str), "w")


def write_text(path: Path, text: str) -> None:
    _replace_with(Path(path), lambda f: f.write(text), "w")


def write_npy(path: Path, array: np.ndarray) -> None:
    _replace_with(Path(path), lambda f: np.save(f, array, allow_pickle=False), "wb")
