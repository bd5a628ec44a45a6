"""The window-rule API: which epochs of one teacher run are *intermediate* (neither under- nor over-fitted).

A window rule is a pure function of one :class:`~harness.train.history.TeacherHistory`: its training losses,
validation metrics, validation probabilities, fit confidences and diagnostics (never the test split, which
histories do not contain). The strategies ``it``, ``iee``, ``iese`` and the ``iese-*`` variants build on it.
Rules are plugins (hook ``sdbench_window_rules``, :class:`~harness.hooks.specs.WindowRuleSpec`); the built-in ones
are in :mod:`plugins.strategies.windows`. A strategy chooses its rule with ``strategy_params.<name>.window``,
a rule name or a mapping ``{name: <rule>, **params}``; :func:`window_rule` resolves it.

Soft labels are cached by the strategy's parameters and by :meth:`WindowRule.key` (name, parameters and the
rule's ``version``), so changing :data:`DEFAULT_WINDOW` or bumping a rule's ``version`` recomputes them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError
from harness.science.strategy import Checkpoint, Teachers
from harness.train.history import TeacherHistory

if TYPE_CHECKING:
    from harness.hooks.registry import Registry

DEFAULT_WINDOW: str = "loss-knee"
"""The rule of a window strategy whose config names none (and uses none of the legacy flat parameters).

Chosen by measurement, not by taste: ``benchmarks/window_regret.py`` at the demo defaults (3 teacher seeds x
3 student seeds per teacher epoch) on demo-triplets, demo-phases and the unseen noisy-digits (real scans,
40% symmetric noise), picking the rule with the lowest regret against the multi-seed oracle averaged over the
datasets, with no per-dataset tuning. ``loss-knee`` had 1.11 points (per dataset 2.03, 1.05 and 0.25),
``val-nll`` 1.46, ``fit-relative`` 2.00, ``band`` (the paper's fixed thresholds, the default before) 5.10,
``generalisation-gap`` 13.99; the ``best-val`` baseline 1.56 and ``last`` 2.68. The README has the table with
its confidence intervals: the first three are within each other's noise."""

LEGACY_BAND_PARAMS = ("low", "high", "min_val_ratio")
_EPS = 1e-12


class WindowRuleError(ConfigError, ValueError):
    """A window rule was asked for by an unknown name or with bad parameters (a ConfigError and a ValueError)."""


class WindowRule(ABC):
    """Subclass, set ``name`` and ``version``, implement :meth:`window` and :meth:`describe`; return the
    constructor's parameters from :meth:`params` (they are part of the soft-label cache key). Bump ``version``
    whenever the rule picks differently for the same history and parameters."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1

    @abstractmethod
    def window(self, history: TeacherHistory) -> list[int]:
        """The epochs of ``history`` inside the window: sorted, never empty, a subset of ``history.epochs``."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the rule and its parameters, shown in the strategies' notes."""

    def params(self) -> dict[str, Any]:
        """The rule's parameters, JSON-serialisable."""
        return {}

    def key(self) -> dict[str, Any]:
        """The rule's identity in cache keys: its name, version and parameters."""
        return {"name": self.name or f"{type(self).__module__}.{type(self).__qualname__}",
                "version": self.version, "params": self.params()}

    def across_seeds(self, teachers: Teachers) -> tuple[Checkpoint, ...]:
        """Every teacher seed's window, in seed then epoch order: the checkpoints of IESE and its variants."""
        return tuple(Checkpoint(s, e) for s in sorted(teachers) for e in self.window(teachers[s]))

    @classmethod
    def from_params(cls, **params: Any) -> "WindowRule":
        """The rule of a window strategy's parameters (``window`` or the legacy flat ones): see
        :func:`strategy_window`."""
        return strategy_window(**params)


def window_rule(spec: str | Mapping[str, Any] | WindowRule | None = None,
                registry: "Registry | None" = None) -> WindowRule:
    """The rule ``spec`` names: None (the :data:`DEFAULT_WINDOW`), a rule name, or a mapping
    ``{"name": <rule>, **params}`` whose params go to the rule's factory. Unknown names and bad parameters
    raise :class:`WindowRuleError`."""
    if isinstance(spec, WindowRule):
        return spec
    if spec is None:
        spec = DEFAULT_WINDOW
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise WindowRuleError(f"a window mapping needs a rule 'name', got {dict(spec)!r}")
    else:
        raise WindowRuleError(f"window must be a rule name or a mapping {{name: <rule>, ...}}, got {spec!r}")
    if registry is None:
        from harness.hooks.registry import get_registry

        registry = get_registry()
    if name not in registry.names("window"):
        from harness.hooks.registry import unknown_name_message

        raise WindowRuleError(unknown_name_message("window rule", name, registry.names("window")))
    try:
        rule = registry.get("window", name).factory(**params)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, WindowRuleError):
            raise
        raise WindowRuleError(f"window rule '{name}': {exc}") from None
    if not isinstance(rule, WindowRule):
        raise WindowRuleError(f"window rule '{name}': its factory returned {rule!r}, expected a "
                              "harness.science.windows.WindowRule")
    return rule


def strategy_window(window: str | Mapping[str, Any] | None = None, *, low: float | None = None,
                    high: float | None = None, min_val_ratio: float | None = None,
                    epochs: Sequence[int] | None = None, registry: "Registry | None" = None) -> WindowRule:
    """The rule of a window strategy's parameters: ``window`` (see :func:`window_rule`) or, when it is
    absent, the legacy flat parameters: ``epochs`` (the ``epochs`` rule) or ``low``/``high``/``min_val_ratio``
    (the ``band`` rule); none of them: the default rule."""
    band = {k: v for k, v in zip(LEGACY_BAND_PARAMS, (low, high, min_val_ratio)) if v is not None}
    flat = sorted(band) + (["epochs"] if epochs else [])
    if window is not None and flat:
        raise WindowRuleError(f"give either 'window' or the flat window parameters {', '.join(flat)}, not both "
                              f"(put them in the window mapping, e.g. window: {{name: band, low: 0.5}})")
    if window is not None:
        return window_rule(window, registry)
    if epochs and band:
        raise WindowRuleError(f"'epochs' and {', '.join(sorted(band))} are parameters of two different window "
                              "rules (epochs, band): give one of them")
    if epochs:
        return window_rule({"name": "epochs", "epochs": epochs}, registry)
    if band:
        return window_rule({"name": "band", **band}, registry)
    return window_rule(None, registry)


# -- curves a rule may read ------------------------------------------------------------------------

def normalise(values: Sequence[float], constant: float = 0.5) -> np.ndarray:
    """``values`` rescaled to [0, 1] by their own finite min and max; a constant curve (range below 1e-12
    relative) maps to ``constant`` and NaN stays NaN."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.any():
        return np.full(v.shape, np.nan)
    low, high = v[finite].min(), v[finite].max()
    if not high - low > _EPS * max(1.0, abs(high)):
        return np.where(finite, constant, np.nan)
    return np.where(finite, (v - low) / (high - low), np.nan)
