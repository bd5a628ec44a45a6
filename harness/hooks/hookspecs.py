"""The hooks a sdbench plugin implements. Each docstring is that hook's documentation.

A plugin is a module (or object) with functions named like these hooks and decorated with
``harness.hookimpl``. Built-in plugins use exactly the same hooks as third-party ones; third-party
plugins are found through the ``sdbench`` entry-point group::

    [project.entry-points.sdbench]
    my_strategies = "my_package.strategies"

A hook implementation must return quickly and must not import torch: it only describes what it
provides. The heavy work happens in the spec's ``factory``.
"""

from __future__ import annotations

import pluggy

from harness.hooks.specs import BackboneSpec, DatasetSpec, ExecutorSpec, LoggerSpec, StrategySpec, WindowRuleSpec

hookspec = pluggy.HookspecMarker("sdbench")


@hookspec
def sdbench_datasets() -> list[DatasetSpec]:
    """Return the dataset families this plugin provides.

    Each :class:`~harness.hooks.specs.DatasetSpec` has a unique ``name`` (the ``--datasets`` value), a one-line
    ``description`` and a ``factory(options) -> Dataset`` that reads the data described by ``options``.
    """


@hookspec
def sdbench_backbones() -> list[BackboneSpec]:
    """Return the backbone providers this plugin provides.

    Each :class:`~harness.hooks.specs.BackboneSpec` builds architectures by name through
    ``factory(architecture, num_outputs, options) -> Backbone`` and may declare short ``aliases``.
    """


@hookspec
def sdbench_strategies() -> list[StrategySpec]:
    """Return the teacher strategies this plugin provides.

    Each :class:`~harness.hooks.specs.StrategySpec` has a ``factory(**params) -> Strategy``. A strategy is a pure
    function of the teacher histories: it selects ``(seed, epoch)`` checkpoints and combines their
    probabilities into soft labels (see :mod:`harness.science.strategy`).
    """


@hookspec
def sdbench_window_rules() -> list[WindowRuleSpec]:
    """Return the window rules this plugin provides.

    Each :class:`~harness.hooks.specs.WindowRuleSpec` has a unique ``name`` (what ``window:`` in a window
    strategy's ``strategy_params`` names) and a ``factory(**params) -> WindowRule``. A rule is a pure function
    of one teacher history that returns the epochs of its intermediate window (see :mod:`harness.science.windows`).
    """


@hookspec
def sdbench_executors() -> list[ExecutorSpec]:
    """Return the executors this plugin provides.

    Each :class:`~harness.hooks.specs.ExecutorSpec` has a ``factory(options) -> Executor`` that runs batches of
    independent training jobs somewhere (see :mod:`harness.runs.executor`). Import the scheduling library inside
    the factory, so that listing plugins works without it.
    """


@hookspec
def sdbench_loggers() -> list[LoggerSpec]:
    """Return the experiment loggers this plugin provides.

    Each :class:`~harness.hooks.specs.LoggerSpec` has a unique ``name`` (what ``loggers:`` and ``--logger`` name)
    and a ``factory(run_dir, options) -> Logger`` (see :mod:`harness.runs.loggers`). Import the tracking library
    inside the factory, so that listing plugins works without it.
    """
