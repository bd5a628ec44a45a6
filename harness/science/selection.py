"""Rules that pick teacher epochs from a teacher's history: the best validation score, and the intermediate
window of epochs that are neither under- nor over-fitted.

They are the core's, not a strategy plugin's, because the sweep figure marks both (the best-validation
epoch and the shaded window) whichever strategies are installed; the strategy plugins build on them.

Window rules are plugins (see :mod:`harness.science.windows`, re-exported here): :func:`window_rule` resolves a rule
by name or ``{name: <rule>, **params}`` mapping, :func:`strategy_window` the parameters of a window strategy
(``window``, or the legacy flat ``low``/``high``/``min_val_ratio`` of the ``band`` rule and ``epochs``).
The default rule is :data:`harness.science.windows.DEFAULT_WINDOW`; the built-in rules are in
:mod:`plugins.strategies.windows`.
"""

from __future__ import annotations

import math

from harness.metrics.diagnostics import nll, true_label_confidence
from harness.science.windows import DEFAULT_WINDOW, WindowRule, WindowRuleError, normalise, strategy_window, window_rule
from harness.train.history import TeacherHistory

__all__ = ["DEFAULT_WINDOW", "WindowRule", "WindowRuleError", "best_val_epoch", "nll", "normalise",
           "strategy_window", "true_label_confidence", "window_rule"]


def best_val_epoch(history: TeacherHistory, epochs: list[int] | None = None) -> int:
    """The epoch of ``history`` (among ``epochs`` if given) with the best primary validation score (the
    earliest on ties; a NaN score ranks last)."""
    candidates = history.epochs if epochs is None else epochs

    def score(e: int) -> float:
        value = history.val_score(e)
        return value if math.isfinite(value) else -math.inf

    return max(candidates, key=lambda e: (score(e), -e))
