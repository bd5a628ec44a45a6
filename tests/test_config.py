"""Configuration layering and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError


def test_defaults_are_the_demo():
    config = load_config()
    assert config.datasets == ("all",) and config.strategies == ("all",)
    assert config.seeds == (0, 1, 2)


def test_file_then_command_line(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [4, 5]\nteacher: {epochs: 3}\nstrategy_params: {it: {low: 0.4}}\n")
    config = load_config(path, {"seeds": "7,8", "strategies": "hard,it"})
    assert config.seeds == (7, 8)
    assert config.strategies == ("hard", "it")
    assert config.teacher.epochs == 3 and config.teacher.batch_size == 32
    assert config.strategy_params == {"it": {"low": 0.4}}


def test_unknown_key_names_the_file_and_suggests(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher: {epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'teacher.epoch'; did you mean 'teacher.epochs'\?"):
        load_config(path)


def test_invalid_yaml_and_values(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("teacher: {epochs: 0}\n")
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_demo_config_file_matches_the_builtin_defaults():
    demo = Path(__file__).resolve().parent.parent / "benchmarks" / "demo.yaml"
    assert load_config(demo) == load_config()


def test_ci_runs_the_readme_test_command():
    root = Path(__file__).resolve().parent.parent
    readme, ci = (root / "README.md").read_text(), (root / ".ci" / "run").read_text()
    test_command = next(line for line in readme.splitlines() if "pip install -e '.[test]'" in line)
    assert test_command.strip() in ci
    assert "bench run --datasets all --strategies all" in readme
