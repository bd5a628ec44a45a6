"""The small frozen objects that plugins return from their hooks.

Specs are cheap to build and import nothing heavy: listing plugins must not import torch. The work happens
in ``factory``, called only when the harness actually needs the dataset, backbone or strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset family. ``factory(options)`` returns a :class:`harness.data.dataset.Dataset`.

    ``options`` is the mapping from the config's ``dataset_options.<name>`` (data root, protocol, ...).
    """

    name: str
    description: str
    factory: Callable[[Mapping[str, Any]], Any]
    kind: str = field(default="dataset", init=False)


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone provider. ``factory(architecture, num_outputs, options)`` returns a
    :class:`harness.train.models.Backbone`.

    Backbones are named ``provider:architecture`` (``timm:resnet18``); ``aliases`` maps short names
    (``swin-b``) to an architecture of this provider.
    """

    name: str
    description: str
    factory: Callable[[str, int, Mapping[str, Any]], Any]
    aliases: Mapping[str, str] = field(default_factory=dict)
    kind: str = field(default="backbone", init=False)


@dataclass(frozen=True)
class StrategySpec:
    """A teacher strategy. ``factory(**params)`` returns a :class:`harness.science.strategy.Strategy`.

    ``params`` come from the config's ``strategy_params.<name>``.
    """

    name: str
    description: str
    factory: Callable[..., Any]
    kind: str = field(default="strategy", init=False)


@dataclass(frozen=True)
class WindowRuleSpec:
    """A window rule: which epochs of a teacher run are intermediate. ``factory(**params)`` returns a
    :class:`harness.science.windows.WindowRule`.

    ``params`` come from a window strategy's ``window: {name: <rule>, **params}``.
    """

    name: str
    description: str
    factory: Callable[..., Any]
    kind: str = field(default="window", init=False)


@dataclass(frozen=True)
class ExecutorSpec:
    """An executor. ``factory(options)`` returns a :class:`harness.runs.executor.Executor`.

    ``options`` is the mapping from the config's ``executor_options.<name>``, with the run's ``device`` added
    (where jobs run follows it: see the local executor). A factory whose optional
    dependency is missing raises the error of :func:`harness.hooks.registry.require_extra`.
    """

    name: str
    description: str
    factory: Callable[[Mapping[str, Any]], Any]
    kind: str = field(default="executor", init=False)


@dataclass(frozen=True)
class LoggerSpec:
    """An experiment logger. ``factory(run_dir, options)`` returns a :class:`harness.runs.loggers.Logger`.

    ``options`` is the mapping from the config's ``logger_options.<name>``. The factory is called in every
    process that trains jobs of the run (worker processes too), so it must be cheap, and its logger must keep
    each job's records apart (jobs run in several processes at once). A factory whose optional dependency is
    missing raises the error of :func:`harness.hooks.registry.require_extra`.
    """

    name: str
    description: str
    factory: Callable[[Path, Mapping[str, Any]], Any]
    kind: str = field(default="logger", init=False)


Spec = DatasetSpec | BackboneSpec | StrategySpec | WindowRuleSpec | ExecutorSpec | LoggerSpec
