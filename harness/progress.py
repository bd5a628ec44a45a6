"""Progress reporting: bars on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stream, flush=True)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield ``advance(n)``; a bar on a terminal, one line at the start and one at the end otherwise."""
        started = time.time()
        if self.quiet:
            yield lambda n: None
            return
        if self.interactive:
            from tqdm import tqdm

            with tqdm(total=total, desc=description, file=self.stream, leave=False, dynamic_ncols=True) as bar:
                yield bar.update
            self.line(f"{description}: done in {time.time() - started:.1f}s")
            return
        self.line(f"{description} ...")
        yield lambda n: None
        self.line(f"{description}: done in {time.time() - started:.1f}s")
