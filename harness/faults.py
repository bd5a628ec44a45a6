"""Deterministic crash points for the kill -9 tests.

``SDBENCH_KILL_AT=<point>:<n>`` makes the process kill itself with SIGKILL the n-th time it reaches
``point`` (``batch`` inside a training epoch, ``job-done`` between jobs, ``atomic-write`` after a file's
temporary copy is written but before it is renamed, ``artifact-rename`` after a job's completion record is
written but before its directory is renamed). Without the variable a kill point is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

KILL_ENV = "SDBENCH_KILL_AT"

_reached: Counter[str] = Counter()


def kill_point(point: str) -> None:
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    name, _, count = target.partition(":")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
