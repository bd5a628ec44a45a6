"""What a job body needs besides its job: the plan, the artifact store, the frames and the run's loggers.

A run's process builds one :class:`JobContext`; a worker process (another GPU, a Ray task, a SLURM job)
rebuilds it from the run's configuration and directory on its first job (:func:`context_for`) and reuses it
for the next ones, so that frames decoded into memory are loaded once per process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from harness.config import RunConfig, load_config
from harness.data.frames import FrameStore
from harness.data.loader import FrameSet
from harness.hooks.registry import get_registry
from harness.runs.loggers import LoggerGroup, build_loggers
from harness.runs.plan import LoadedDataset, Plan
from harness.runs.store import ArtifactStore, canonical_json
from harness.system.paths import sdbench_home
from harness.system.progress import LOG_FILE, Progress


@dataclass
class JobContext:
    plan: Plan
    out_dir: Path
    progress: Progress = field(default_factory=Progress)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.store = ArtifactStore(self.out_dir / "jobs")
        self.frame_store = FrameStore(sdbench_home())
        self.started = time.time()  # rerun: all recomputes what finished before this and keeps what finished since
        self.progress.log_path = self.out_dir / LOG_FILE
        # the run's loggers while the run tracks itself (harness.experiments.run.Runner.tracking)
        self.active_loggers: LoggerGroup | None = None
        self._framesets: dict[tuple[str, tuple[str, ...]], FrameSet] = {}

    @property
    def config(self) -> RunConfig:
        return self.plan.config

    @property
    def since(self) -> float | None:
        """Under ``rerun: all``, the run's start: what finished before it is recomputed."""
        return self.started if self.config.rerun == "all" else None

    @property
    def loggers(self) -> LoggerGroup:
        """What jobs log their epochs to: the run's loggers while it tracks itself; otherwise (in a worker
        process) built on first use, a logger that cannot be built left out with a warning."""
        if self.active_loggers is None:
            self.active_loggers = build_loggers(self.plan.registry, self.config.loggers, self.config.logger_options,
                                                self.out_dir, strict=False)
        return self.active_loggers

    def frames(self, data: LoadedDataset, videos: tuple[str, ...]) -> FrameSet:
        """The frames of ``videos``, loaded once per process."""
        key = (data.name, videos)
        if key not in self._framesets:
            self._framesets[key] = FrameSet(self.load_frames(data, videos))
        return self._framesets[key]

    def load_frames(self, data: LoadedDataset, videos: tuple[str, ...]) -> list[np.ndarray]:
        """The frame arrays of ``videos``, decoded into the frame store first where they are not there yet."""
        size = self.config.image_size
        with self.progress.task(f"frames {data.name} ({len(videos)} videos, {size}px)", len(videos)) as advance:
            return self.frame_store.load(data.name, data.fingerprint, [data.index.videos[v] for v in videos], size,
                                         progress=advance)


_CONTEXTS: dict[tuple[str, str], JobContext] = {}


def _context_key(config: Mapping[str, Any], out_dir: str) -> tuple[str, str]:
    return out_dir, canonical_json(config)


def register(context: JobContext, config: Mapping[str, Any]) -> None:
    """Make ``context`` the one :func:`context_for` gives for its run (the run's process registers its own, so
    that jobs executed in that process share its frames and loggers)."""
    _CONTEXTS[_context_key(config, str(context.out_dir))] = context


def context_for(config: Mapping[str, Any], out_dir: str, quiet: bool = False,
                fingerprints: Mapping[str, str] | None = None) -> JobContext:
    """The context of the run at ``out_dir`` with configuration ``config`` (``RunConfig.to_dict``) in this
    process: the registered one, else built on first use (in worker processes), with the datasets'
    ``fingerprints`` the run's process computed."""
    key = _context_key(config, out_dir)
    if key not in _CONTEXTS:
        plan = Plan(load_config(None, config), get_registry(), dict(fingerprints or {}))
        _CONTEXTS[key] = JobContext(plan, Path(out_dir), Progress(quiet=quiet))
    return _CONTEXTS[key]
