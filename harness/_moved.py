"""The module paths of sdbench 0.1's flat layout, kept importable for plugins written against it.

``import harness.strategy`` (or ``from harness.plugins import hookimpl``) still works: the old name is a
module whose attributes are looked up, on first use, in the modules that hold its names now, and importing
it warns once with a :class:`DeprecationWarning` naming them. New code imports :mod:`harness.api`, or the
module that owns a name. Nothing inside sdbench imports an old path (a test checks).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any, Sequence

MOVED: dict[str, tuple[str, ...]] = {
    "harness.atomic": ("harness.system.atomic",),
    "harness.calibration": ("harness.metrics.calibration",),
    "harness.checkpoint": ("harness.train.checkpoint",),
    "harness.conformance": ("harness.kits.conformance",),
    "harness.cpus": ("harness.system.cpus",),
    "harness.degenerate": ("harness.metrics.degenerate",),
    "harness.diagnostics": ("harness.metrics.diagnostics",),
    "harness.executor": ("harness.runs.executor", "harness.runs.plan"),
    "harness.export": ("harness.students.export", "harness.train.model_files"),
    "harness.faults": ("harness.system.faults",),
    "harness.gc": ("harness.runs.gc",),
    "harness.history": ("harness.train.history",),
    "harness.hookspecs": ("harness.hooks.hookspecs",),
    "harness.locks": ("harness.system.locks",),
    "harness.loggers": ("harness.runs.loggers",),
    "harness.merge": ("harness.report.merge",),
    "harness.missing": ("harness.report.missing",),
    "harness.models": ("harness.train.models",),
    "harness.paths": ("harness.system.paths",),
    "harness.plugins": ("harness.hooks.registry",),
    "harness.predict": ("harness.students.predict",),
    "harness.progress": ("harness.system.progress",),
    "harness.regret": ("harness.report.regret", "harness.science.regret", "harness.science.sweep"),
    "harness.results": ("harness.report.results",),
    "harness.runinfo": ("harness.runs.runinfo",),
    "harness.runner": ("harness.experiments.run", "harness.runs.plan"),
    "harness.scaffold": ("harness.kits.scaffold",),
    "harness.scaffold_dataset": ("harness.kits.scaffold_dataset",),
    "harness.selection": ("harness.science.selection",),
    "harness.specs": ("harness.hooks.specs",),
    "harness.statistics": ("harness.science.statistics",),
    "harness.store": ("harness.runs.store",),
    "harness.strategy": ("harness.science.strategy",),
    "harness.sweep": ("harness.experiments.sweep", "harness.science.sweep", "harness.report.sweep"),
    "harness.sweep_figure": ("harness.report.sweep",),
    "harness.teacher_report": ("harness.report.teachers",),
    "harness.training": ("harness.train.fit",),
    "harness.windows": ("harness.science.windows",),
}
"""Each old module path and the modules that hold its names now, searched in this order."""


class _Moved(types.ModuleType):
    def __init__(self, name: str, homes: Sequence[str]) -> None:
        super().__init__(name, f"{name} moved to {', '.join(homes)}")
        self.__homes = tuple(homes)

    def __getattr__(self, attribute: str) -> Any:
        for home in self.__homes:
            module = importlib.import_module(home)
            if hasattr(module, attribute):
                value = getattr(module, attribute)
                setattr(self, attribute, value)
                return value
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(self.__homes)}) has no attribute "
                             f"{attribute!r}")


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        homes = MOVED[spec.name]
        warnings.warn(f"{spec.name} is deprecated: import from harness.api or {' / '.join(homes)}",
                      DeprecationWarning, stacklevel=2)
        return _Moved(spec.name, homes)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the names are looked up in their new homes."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, _MovedLoader()) if name in MOVED else None


def install() -> None:
    """Make the old module paths importable (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
