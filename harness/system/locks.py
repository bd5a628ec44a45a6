"""Inter-process locks on the run directory and the frame store, on local disks and on cluster file systems.

Built on ``filelock`` rather than on ``fcntl`` directly: its :class:`filelock.FileLock` keeps the lock file in
place on release (waiters share one inode, so a lock is never unlinked while another process holds or awaits
it), checks after ``flock`` that the file it locked is still the one at the path, and falls back by itself
to a marker lock (:class:`filelock.SoftFileLock`, which reclaims the marker of a crashed holder on the same
host) where the file system has no ``flock`` at all (``ENOSYS``: Lustre mounted ``noflock``). Some file
systems refuse ``flock`` with another error instead (``ENOLCK`` on NFS without a lock daemon, ``EOPNOTSUPP``);
:func:`lock_kind` probes a directory once per process and picks the marker lock there too, so a run on such
a file system locks every job the same way instead of failing each one.
"""

from __future__ import annotations

import errno
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import filelock

from harness.errors import SdbenchError

_FLOCK_REFUSED = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.ENOSYS}

_KINDS: dict[Path, type[filelock.BaseFileLock]] = {}


class LockBusyError(SdbenchError):
    """Another process holds the lock."""


def lock_kind(directory: Path) -> type[filelock.BaseFileLock]:
    """The lock class that works in ``directory``: ``flock`` where the file system has it, else a marker lock.

    Probed once per directory and process, by taking and releasing a lock on a probe file there."""
    directory = Path(directory)
    if directory not in _KINDS:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".lock-probe"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # filelock warns when it falls back by itself; we say it below
                with filelock.FileLock(probe, timeout=0):
                    pass
            _KINDS[directory] = filelock.FileLock
        except filelock.Timeout:
            _KINDS[directory] = filelock.FileLock  # another process holds the probe: flock works
        except OSError as exc:
            if exc.errno not in _FLOCK_REFUSED:
                raise SdbenchError(f"cannot create a lock file in {directory}: {exc}") from exc
            _KINDS[directory] = filelock.SoftFileLock
    return _KINDS[directory]


@contextmanager
def held(path: Path, what: str, wait: bool = True) -> Iterator[None]:
    """Hold the lock at ``path`` for the ``with`` block. Without ``wait``, raise :class:`LockBusyError` (naming
    ``what`` and the lock file) at once when another process holds it."""
    path = Path(path)
    lock = lock_kind(path.parent)(path, timeout=-1 if wait else 0, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockBusyError(f"{what} is being run by another process (lock {path} is held)") from None
    try:
        yield
    finally:
        lock.release()


def is_held(path: Path) -> bool:
    """Whether another process holds the lock at ``path`` right now (a free lock is taken and released)."""
    try:
        with held(path, str(path), wait=False):
            return False
    except LockBusyError:
        return True


def fsync_directory(directory: Path) -> None:
    """Make a rename or a removal in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
