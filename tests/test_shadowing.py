"""A ``plugins`` package that shadows sdbench's is reported in one line by every command, before any import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["plugins"], ["gc", "--dry-run"]])
def test_a_shadowing_plugins_package_is_named_in_one_line(tmp_path: Path, command: list[str]):
    shadow = tmp_path / "plugins"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise RuntimeError('the shadowing package was imported')\n")
    # python -c puts the working directory first on sys.path, as a notebook does
    code = f"import sys; from harness.cli import main; sys.exit(main({command!r}))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: a package named 'plugins' at {shadow.resolve()} shadows sdbench's (expected beside "
        f"{ROOT / 'harness'}); rename it, or run bench from another directory"]
