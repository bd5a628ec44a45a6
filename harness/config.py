"""Run configuration: built-in defaults (the demo), overlaid by a YAML file, overlaid by command-line flags."""

from __future__ import annotations

import copy
import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "datasets": ["all"],
    "strategies": ["all"],
    "backbones": ["tiny"],
    "seeds": [0, 1, 2],
    "image_size": 48,
    "device": "auto",
    "teacher": {"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-6, "eta_min": 2e-4,
                "augment": False, "eval_batch_size": 256},
    "student": {"epochs": 12, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-6, "eta_min": 2e-4,
                "augment": False, "eval_batch_size": 256},
    "distill": {"alpha": 1.0},
    "dataset_options": {},
    "backbone_options": {},
    "strategy_params": {},
    "executor": "local",
    "executor_options": {},
    "rerun": "failed",
}

RERUN_POLICIES = ("never", "failed", "all")
"""Which jobs a run retries: ``never`` keeps earlier failures as they are, ``failed`` (default) retries failed
and interrupted jobs, ``all`` recomputes every job, finished ones included."""

@dataclass(frozen=True)
class FitSettings:
    """How one teacher or student is trained."""

    epochs: int
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 1e-6
    eta_min: float = 2e-5
    augment: bool = True
    eval_batch_size: int = 128


_FREE_FORM = {"dataset_options", "backbone_options", "strategy_params", "executor_options"}


@dataclass(frozen=True)
class RunConfig:
    datasets: tuple[str, ...]
    strategies: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    image_size: int
    device: str
    teacher: FitSettings
    student: FitSettings
    distill_alpha: float
    dataset_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    backbone_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    strategy_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    executor: str = "local"
    executor_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rerun: str = "failed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distill"] = {"alpha": data.pop("distill_alpha")}
        return data


def _check_keys(data: Mapping[str, Any], schema: Mapping[str, Any], where: str, prefix: str = "") -> None:
    for key, value in data.items():
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(schema)}"
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{hint}")
        if isinstance(schema[key], dict) and key not in _FREE_FORM:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: '{prefix}{key}' must be a mapping, got {value!r}")
            _check_keys(value, schema[key], where, f"{prefix}{key}.")


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    _check_keys(data, DEFAULTS, str(path))
    return dict(data)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def _fit(section: Mapping[str, Any], where: str) -> FitSettings:
    try:
        settings = FitSettings(**section)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if settings.epochs < 1 or settings.batch_size < 2:
        raise ConfigError(f"{where}: epochs must be >= 1 and batch_size >= 2, got {section}")
    return settings


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults, then the YAML file at ``path``, then ``overrides`` (already-parsed command-line values)."""
    data = copy.deepcopy(DEFAULTS)
    if path is not None:
        data = _merge(data, read_config_file(path))
    if overrides:
        _check_keys(overrides, DEFAULTS, "command line")
        data = _merge(data, overrides)
    where = str(path) if path else "configuration"
    if data["rerun"] not in RERUN_POLICIES:
        raise ConfigError(f"{where}: rerun must be one of {', '.join(RERUN_POLICIES)}, got {data['rerun']!r}")
    try:
        seeds = tuple(int(s) for s in _as_list(data["seeds"]))
        return RunConfig(
            datasets=tuple(_as_list(data["datasets"])),
            strategies=tuple(_as_list(data["strategies"])),
            backbones=tuple(_as_list(data["backbones"])),
            seeds=seeds,
            image_size=int(data["image_size"]),
            device=str(data["device"]),
            teacher=_fit(data["teacher"], f"{where}: teacher"),
            student=_fit(data["student"], f"{where}: student"),
            distill_alpha=float(data["distill"]["alpha"]),
            dataset_options=dict(data["dataset_options"] or {}),
            backbone_options=dict(data["backbone_options"] or {}),
            strategy_params=dict(data["strategy_params"] or {}),
            executor=str(data["executor"]),
            executor_options=dict(data["executor_options"] or {}),
            rerun=str(data["rerun"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
