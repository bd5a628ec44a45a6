"""Where sdbench keeps generated data and caches."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "SDBENCH_HOME"


def sdbench_home() -> Path:
    """``$SDBENCH_HOME`` if set, else the user cache directory (``~/.cache/sdbench`` on Linux)."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("sdbench"))
