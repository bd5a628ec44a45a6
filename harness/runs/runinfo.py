"""The run record: what produced a run directory (resolved config, package versions, git revision)."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Mapping

from harness.config import RunConfig
from harness.hooks.registry import Registry
from harness.system.atomic import write_json

PACKAGES = ("sdbench", "torch", "torchvision", "timm", "numpy", "pandas", "av", "pluggy", "ivtmetrics")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    versions = {}
    for name in PACKAGES + extra:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision() -> str | None:
    """The git revision of the sdbench source tree, with '+dirty' when it has uncommitted changes."""
    source = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


RECORD_FILE = "run.json"


def write_run_record(run_dir: Path, config: RunConfig, registry: Registry, skipped: Mapping[str, str]) -> None:
    plugins = {kind: {name: str(reg.provider) for name, reg in registry.all(kind).items()}
               for kind in ("dataset", "backbone", "strategy")}
    write_json(Path(run_dir) / RECORD_FILE, {
        "config": config.to_dict(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "git_revision": git_revision(),
        "plugins": plugins,
        "plugin_problems": registry.problems,
        "skipped_datasets": dict(skipped),
    })
