"""Progress reporting: bars on a terminal, plain lines otherwise (logs, CI, pipes).

A run's runner also appends every progress line, with a timestamp and the process id, to the run directory's
plain-text log (``log.txt``, kept across reruns): even under ``--quiet``, and from worker processes too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TextIO

log = logging.getLogger("sdbench")

LOG_FILE = "log.txt"
"""The plain-text log in a run directory."""


def append_log(path: Path, message: str) -> None:
    """Append ``message`` to the log at ``path``, after a timestamp and the process id, in one ``O_APPEND``
    write: the lines of processes writing one log at once do not interleave (on a local file system)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.strftime('%Y-%m-%d %H:%M:%S')} [{os.getpid()}] {message}\n".encode())
    finally:
        os.close(fd)


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False, log_path: Path | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.log_path = log_path
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, message: str) -> None:
        """Print ``message`` unless quiet; append it to the log at ``log_path``, if set, in any case."""
        self._log(message)
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    def _log(self, message: str) -> None:
        """Append ``message`` to the log; a log that cannot be written is given up with a warning, never
        failing the run."""
        if self.log_path is None:
            return
        try:
            append_log(self.log_path, message)
        except OSError as exc:
            log.warning(f"cannot write the run's log {self.log_path}: {exc}; its lines are printed only")
            self.log_path = None

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield ``advance(n)``; a bar on a terminal, one line at the start and one at the end otherwise."""
        started = time.time()
        if self.interactive and not self.quiet:
            from tqdm import tqdm

            self._log(f"{description} ...")
            with tqdm(total=total, desc=description, file=self.stream, leave=False, dynamic_ncols=True) as bar:
                yield bar.update
        else:
            self.line(f"{description} ...")
            yield lambda n: None
        self.line(f"{description}: done in {time.time() - started:.1f}s")
