"""Deterministic crash points for the kill -9 tests.

``SDBENCH_KILL_AT=<point>:<n>`` makes the process kill itself with SIGKILL the n-th time it reaches
``point`` (``batch`` inside a training epoch, ``job-done`` between jobs, ``atomic-write`` after a file's
temporary copy is written but before it is renamed, ``artifact-rename`` after a job's completion record is
written but before its directory is renamed). Without the variable a kill point is a dictionary lookup.
A malformed value is an error, raised by :func:`kill_target` (the CLI calls it when it starts) and at the
first kill point, never a crash test that silently does not crash.
"""

from __future__ import annotations

import functools
import os
import signal
from collections import Counter

from harness.errors import SdbenchError

KILL_ENV = "SDBENCH_KILL_AT"
KILL_POINTS = ("batch", "job-done", "atomic-write", "artifact-rename")

_reached: Counter[str] = Counter()


def kill_target() -> tuple[str, int] | None:
    """The point and count that ``SDBENCH_KILL_AT`` names, None without it; SdbenchError when malformed."""
    value = os.environ.get(KILL_ENV)
    return _parse(value) if value else None


@functools.cache
def _parse(value: str) -> tuple[str, int]:
    point, sep, count = value.partition(":")
    if not sep:
        wrong = "no ':<n>'"
    elif point not in KILL_POINTS:
        wrong = f"unknown point {point!r}"
    elif not (count.isascii() and count.isdigit() and len(count) <= 18 and int(count) >= 1):
        wrong = f"the count {count!r} is not a whole number of at least 1"
    else:
        return point, int(count)
    raise SdbenchError(f"{KILL_ENV}={value!r} is malformed ({wrong}): expected <point>:<n> with n >= 1; "
                       f"known points: {', '.join(KILL_POINTS)}")


def kill_point(point: str) -> None:
    target = kill_target()
    if target is None or target[0] != point:
        return
    _reached[point] += 1
    if _reached[point] == target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
