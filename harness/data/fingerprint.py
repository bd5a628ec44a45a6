"""Dataset fingerprints from content, so that a dataset copied elsewhere (``cp -a`` to a node's scratch disk)
keeps its frame store and every job key.

A fingerprint hashes the bytes of each label file, the size of each image and video file (hashing hundreds of
GB of video would take longer than decoding it), each keyed by its path relative to the data root, and the
options that change frames or labels. Never the root itself, never modification times.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping


def content_fingerprint(dataset: str, root: Path, labels: Iterable[Path], media: Iterable[Path],
                        options: Mapping[str, Any]) -> str:
    """16 hex digits of the sha256 of ``labels``' bytes, ``media``'s sizes (both files under ``root``; an
    absent file counts as absent) and ``options``."""
    key = {"dataset": dataset, "options": dict(options),
           "labels": {_relative(path, root): _sha256(path) for path in labels},
           "media": {_relative(path, root): path.stat().st_size if path.is_file() else None for path in media}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _relative(path: Path, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
