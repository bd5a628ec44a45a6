"""Where a dataset's files are: ``dataset_options.<name>.root`` (config or ``--data-root NAME=PATH``), else
the dataset's environment variable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping


def data_root(options: Mapping[str, Any], env_var: str | None) -> Path | None:
    """The configured data root, or None when neither the options nor the environment name one."""
    configured = options.get("root") or (os.environ.get(env_var) if env_var else None)
    return Path(configured).expanduser() if configured else None


def root_unavailable(name: str, root: Path | None, env_var: str | None) -> str | None:
    """None when ``root`` is an existing directory, else why not and the three ways to point at the data."""
    how = f"set dataset_options.{name}.root in a config file, pass --data-root {name}=PATH"
    how += f", or set {env_var}" if env_var else ""
    if root is None:
        return f"no data root configured ({how})"
    if not root.is_dir():
        return f"data root {root} does not exist ({how})"
    return None
