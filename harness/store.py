"""Content-addressed, atomically written job artifacts.

A job's key hashes its stage, its canonical configuration, the keys of the jobs it depends on and the
versions of the plugins involved. A job writes into a temporary directory, writes its completion record
``done.json`` last, and renames the directory into ``<root>/<stage>/<key>``: a directory at the final path is
always complete, and a rerun skips it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.atomic import write_json

DONE = "done.json"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def job_key(stage: str, config: Mapping[str, Any], upstream: Mapping[str, str] | None = None,
            versions: Mapping[str, str] | None = None) -> str:
    payload = {"stage": stage, "config": config, "upstream": upstream or {}, "versions": versions or {}}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:20]


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def is_complete(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / DONE).is_file()

    @contextmanager
    def writing(self, stage: str, key: str, description: Mapping[str, Any]) -> Iterator[Path]:
        """A fresh temporary directory for the job; on success it becomes ``path(stage, key)``."""
        final = self.path(stage, key)
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        started = time.time()
        try:
            yield tmp
            write_json(tmp / DONE, {"stage": stage, "key": key, "job": dict(description),
                                    "seconds": round(time.time() - started, 3), "finished": time.time()})
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
