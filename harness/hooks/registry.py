"""Plugin discovery and lookup by name.

Built-in plugins and third-party ones (entry-point group ``sdbench``) register through the same hooks.
Every plugin is loaded, and every hook implementation called, in isolation: a broken third-party plugin
costs a warning naming it and its error, unless strict mode (``--strict-plugins`` or
``SDBENCH_STRICT_PLUGINS=1``) turns that into an error.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable

import pluggy

from harness import __version__
from harness.errors import ConfigError, PluginError
from harness.hooks import hookspecs
from harness.hooks.specs import BackboneSpec, DatasetSpec, ExecutorSpec, LoggerSpec, Spec, StrategySpec, WindowRuleSpec

log = logging.getLogger("sdbench")

hookimpl = pluggy.HookimplMarker("sdbench")

ENTRY_POINT_GROUP = "sdbench"
STRICT_ENV = "SDBENCH_STRICT_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.datasets.demo",
    "plugins.datasets.cholect45",
    "plugins.datasets.cholect50",
    "plugins.datasets.cholec80",
    "plugins.datasets.esad",
    "plugins.datasets.autolaparo",
    "plugins.models.timm_backbones",
    "plugins.strategies.baselines",
    "plugins.strategies.intermediate",
    "plugins.strategies.ensembles",
    "plugins.strategies.literature",
    "plugins.strategies.windows",
    "plugins.executors.local",
    "plugins.executors.ray_tasks",
    "plugins.executors.slurm",
    "plugins.loggers.tensorboard_events",
    "plugins.loggers.text_log",
    "plugins.loggers.mlflow_tracking",
    "plugins.loggers.wandb_tracking",
)

_HOOKS: dict[str, tuple[str, type]] = {
    "dataset": ("sdbench_datasets", DatasetSpec),
    "backbone": ("sdbench_backbones", BackboneSpec),
    "strategy": ("sdbench_strategies", StrategySpec),
    "window": ("sdbench_window_rules", WindowRuleSpec),
    "executor": ("sdbench_executors", ExecutorSpec),
    "logger": ("sdbench_loggers", LoggerSpec),
}
KINDS = tuple(_HOOKS)
"""The kinds of plugin, in the order ``bench plugins`` lists them."""


@dataclass(frozen=True)
class Provider:
    """Where a spec came from: the plugin module and the distribution that ships it."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.plugin} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Registered:
    spec: Spec
    provider: Provider


def check_builtin_package() -> None:
    """Fail in one line when the top-level ``plugins`` that imports would find is not sdbench's (installed beside
    ``harness``): a ``plugins`` folder in a notebook's directory or on PYTHONPATH shadows it, and the built-in
    plugins would fail to import deep inside. Only looks the package up: none of its code runs."""
    expected = Path(__file__).resolve().parents[2] / "plugins"
    beside = expected.parent / "harness"
    spec = importlib.util.find_spec("plugins")
    if spec is None:
        raise PluginError(f"sdbench's package 'plugins' is missing (expected beside {beside}); reinstall sdbench")
    found = [Path(p).resolve() for p in spec.submodule_search_locations or [spec.origin]]
    if found != [expected]:
        raise PluginError(f"a package named 'plugins' at {' and '.join(map(str, found))} shadows sdbench's "
                          f"(expected beside {beside}); rename it, or run bench from another directory")


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class Registry:
    """Every dataset, backbone, strategy, window rule, executor and logger known to this installation, by kind
    and name."""

    def __init__(self, strict: bool | None = None, builtins: Iterable[str] = BUILTIN_PLUGINS,
                 entry_points: bool = True) -> None:
        self.strict = strict_from_env() if strict is None else strict
        self.problems: list[str] = []
        self._pm = pluggy.PluginManager("sdbench")
        self._pm.add_hookspecs(hookspecs)
        self._providers: dict[str, Provider] = {}
        check_builtin_package()
        for module_name in builtins:
            self._register(importlib.import_module(module_name), module_name,
                           Provider(module_name, "sdbench", __version__))
        if entry_points:
            for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)
        self._specs = {kind: self._collect(kind) for kind in _HOOKS}

    def _register(self, plugin: object, name: str, provider: Provider) -> None:
        self._pm.register(plugin, name=name)
        self._providers[name] = provider

    def _problem(self, message: str) -> None:
        if self.strict:
            raise PluginError(message)
        self.problems.append(message)
        log.warning(message)

    def _load_entry_point(self, entry_point: metadata.EntryPoint) -> None:
        dist = entry_point.dist
        provider = Provider(entry_point.value, dist.name if dist else "?", dist.version if dist else "?")
        label = f"plugin '{entry_point.name}' = {provider}"
        try:
            plugin = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a third-party plugin is isolated
            self._problem(f"{label} failed to load and was skipped: {type(exc).__name__}: {exc}")
            return
        try:
            self._register(plugin, entry_point.value, provider)
        except ValueError as exc:
            self._problem(f"{label} could not be registered: {exc}")

    def _collect(self, kind: str) -> dict[str, Registered]:
        hook_name, spec_type = _HOOKS[kind]
        found: dict[str, Registered] = {}
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            provider = self._providers[impl.plugin_name]
            try:
                specs = list(impl.function() or ())
            except Exception as exc:  # noqa: BLE001 - isolate a failing hook implementation
                self._problem(f"plugin {provider}: hook {hook_name} raised {type(exc).__name__}: {exc}")
                continue
            for spec in specs:
                if not isinstance(spec, spec_type):
                    self._problem(f"plugin {provider}: hook {hook_name} returned {spec!r}, "
                                  f"expected a {spec_type.__name__}")
                    continue
                if spec.name in found:
                    raise PluginError(f"{kind} name '{spec.name}' is registered twice: by "
                                      f"{found[spec.name].provider} and by {provider}")
                found[spec.name] = Registered(spec, provider)
        return found

    def all(self, kind: str) -> dict[str, Registered]:
        """Every registered spec of ``kind`` (dataset, backbone, strategy, window, executor or logger), in registration
        order."""
        return self._specs[kind]

    def names(self, kind: str) -> list[str]:
        return list(self._specs[kind])

    def get(self, kind: str, name: str) -> Spec:
        """The spec called ``name``; an unknown name raises with the available names and close matches."""
        try:
            return self._specs[kind][name].spec
        except KeyError:
            raise PluginError(unknown_name_message(kind, name, self.names(kind))) from None

    def provider(self, kind: str, name: str) -> Provider:
        self.get(kind, name)
        return self._specs[kind][name].provider


def require_extra(name: str, module: str, extra: str, kind: str = "executor") -> None:
    """Raise a clear error, with the install command, when a plugin's optional package is missing."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{kind} '{name}' needs the optional package '{module}', which is not installed; "
                          f"install it with: pip install 'sdbench[{extra}]'")


def unknown_name_message(kind: str, name: str, available: list[str]) -> str:
    message = f"unknown {kind} '{name}'"
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    if close:
        message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return message + f" Available: {', '.join(available) or 'none'}."


_registry: Registry | None = None


def get_registry(strict: bool | None = None) -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None or (strict is not None and strict != _registry.strict):
        _registry = Registry(strict=strict)
    return _registry
