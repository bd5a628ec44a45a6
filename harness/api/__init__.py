"""The names plugins and notebooks import, in one place that stays put whichever module owns a name::

    from harness.api import Checkpoint, Selection, Strategy, StrategySpec, hookimpl

It owns nothing: each name lives in its home module (listed below) and is imported from there on first use
(PEP 562), so that ``import harness.api`` costs nothing and a plugin that imports a spec and a base class
pulls in neither torch nor a video decoder nor pandas (listing plugins must stay light). Nothing inside
``harness`` imports this module; it sits above every room it re-exports.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES: dict[str, tuple[str, ...]] = {
    # the plugin mechanism: hooks, specs, the registry
    "harness.hooks.registry": ("hookimpl", "require_extra", "get_registry", "Registry"),
    "harness.hooks.specs": ("BackboneSpec", "DatasetSpec", "ExecutorSpec", "LoggerSpec", "StrategySpec",
                            "WindowRuleSpec"),
    "harness.errors": ("SdbenchError", "ConfigError", "DataError", "PluginError", "DivergedError"),
    # datasets
    "harness.data.dataset": ("Dataset", "FrameIndex", "ImageFrames", "Split", "VideoFileFrames", "VideoFrames"),
    "harness.data.roots": ("data_root", "root_unavailable"),
    "harness.data.fingerprint": ("content_fingerprint",),
    "harness.system.atomic": ("generate_directory", "generated_directory_is_current"),
    "harness.system.paths": ("sdbench_home",),
    # strategies and window rules
    "harness.science.strategy": ("Checkpoint", "Selection", "Strategy", "Teachers", "soft_labels"),
    "harness.train.history": ("TeacherHistory",),
    "harness.science.windows": ("WindowRule", "normalise"),
    "harness.science.selection": ("best_val_epoch", "strategy_window"),
    "harness.metrics.calibration": ("fit_temperature", "apply_temperature"),
    # backbones, executors, loggers
    "harness.train.models": ("Backbone",),
    "harness.runs.plan": ("Job", "Outcome"),
    "harness.runs.executor": ("Executor", "Work"),
    "harness.system.cpus": ("available_cpus",),
    "harness.runs.loggers": ("Logger", "config_text"),
    # results, for notebooks
    "harness.report.analysis": ("load_runs", "teacher_histories", "comparison", "comparison_stats"),
    # conformance kits, for a plugin package's tests
    "harness.kits.conformance": ("DatasetConformance", "StrategyConformance", "WindowRuleConformance"),
}

HOME = {name: module for module, names in _HOMES.items() for name in names}
"""The module that owns each name of the API."""

__all__ = sorted(HOME)


def __getattr__(name: str) -> Any:
    if name not in HOME:
        raise AttributeError(f"module 'harness.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
