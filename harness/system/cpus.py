"""How many CPUs this process may use.

``os.cpu_count()`` counts the machine's cores, but a cluster job is usually given a few of them: SLURM pins
its tasks to their CPUs (the process's affinity), and where its task plugin does not, it still says how many
a task got in ``SLURM_CPUS_PER_TASK``. Sizing thread pools by the machine would oversubscribe the job's
cores many times over.
"""

from __future__ import annotations

import os

SLURM_CPUS_ENV = "SLURM_CPUS_PER_TASK"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, else the machine's count), capped by
    ``$SLURM_CPUS_PER_TASK`` when that is a smaller positive integer; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS and Windows
        count = os.cpu_count() or 1
    slurm = os.environ.get(SLURM_CPUS_ENV, "")
    if slurm.isdigit() and 0 < int(slurm) < count:
        count = int(slurm)
    return max(1, count)
