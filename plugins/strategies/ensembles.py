"""Ensembles of the intermediate window with a twist: weighted by validation score, sharpened by a fixed
temperature, or calibrated by a temperature fitted on the validation frames.

All three start from the IESE checkpoints (every seed's intermediate window, chosen by the window rule of
their ``window`` parameter, or the legacy ``low``, ``high``, ``min_val_ratio`` and ``epochs``, as for IESE:
see :mod:`plugins.strategies.intermediate`) and stay pure functions of the teacher histories. Their own
parameters come from ``strategy_params.<name>`` in the config:

``iese-weighted`` (``tau``, default 0.02)
    Checkpoint weights ``exp((val - best_val) / tau)``, ``val`` being the checkpoint's primary validation
    score (a fraction, so 0.02 = two metric points). Large ``tau`` gives IESE's plain mean; small ``tau``
    gives the best validation checkpoint of the window across seeds.
``iese-sharpened`` (``temperature``, default 0.5)
    The IESE mean rescaled by a fixed temperature in logit space: below 1 sharpens, above 1 softens.
``iese-calibrated``
    The IESE mean rescaled by the temperature that minimises the negative log-likelihood of the validation
    labels under the same ensemble's validation probabilities (temperature scaling, Guo et al. 2017), so the
    soft labels are neither over- nor under-confident on held-out frames. The fitted temperature is in the
    selection's note and description.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.api import Selection, StrategySpec, Teachers, fit_temperature, hookimpl
from plugins.strategies.intermediate import IntermediateEpochsSeedsEnsemble


class ValidationWeightedEnsemble(IntermediateEpochsSeedsEnsemble):
    """Window checkpoints of all seeds, weighted by a softmax of their validation scores."""

    def __init__(self, tau: float = 0.02, **window: Any) -> None:
        super().__init__(**window)
        if not tau > 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.tau = float(tau)

    def select(self, teachers: Teachers, seed: int) -> Selection:
        checkpoints = self.rule.across_seeds(teachers)
        scores = [teachers[c.seed].val_score(c.epoch) for c in checkpoints]
        weights = tuple(math.exp((score - max(scores)) / self.tau) for score in scores)
        return Selection(checkpoints, weights, note=f"all seeds, window: {self.rule.describe()}; "
                                                    f"weights exp((val - best) / {self.tau:g})")


class SharpenedEnsemble(IntermediateEpochsSeedsEnsemble):
    """Window checkpoints of all seeds, their mean rescaled by a fixed temperature."""

    def __init__(self, temperature: float = 0.5, **window: Any) -> None:
        super().__init__(**window)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def select(self, teachers: Teachers, seed: int) -> Selection:
        return Selection(self.rule.across_seeds(teachers), temperature=self.temperature,
                         note=f"all seeds, window: {self.rule.describe()}; temperature {self.temperature:g}")


class CalibratedEnsemble(IntermediateEpochsSeedsEnsemble):
    """Window checkpoints of all seeds, their mean rescaled by the temperature fitted on validation."""

    def select(self, teachers: Teachers, seed: int) -> Selection:
        checkpoints = self.rule.across_seeds(teachers)
        history = teachers[checkpoints[0].seed]
        val_probs = np.mean([np.asarray(teachers[c.seed].val_probs(c.epoch), dtype=np.float64)
                             for c in checkpoints], axis=0)
        temperature = (fit_temperature(val_probs, history.val_labels, history.task) if len(val_probs) else 1.0)
        return Selection(checkpoints, temperature=temperature,
                         note=f"all seeds, window: {self.rule.describe()}; temperature {temperature:.3f} "
                              "fitted on the validation frames")


@hookimpl
def sdbench_strategies() -> list[StrategySpec]:
    return [
        StrategySpec("iese-weighted", "IESE weighted by a softmax of validation scores (parameter tau)",
                     ValidationWeightedEnsemble),
        StrategySpec("iese-sharpened", "IESE rescaled by a fixed temperature (parameter temperature)",
                     SharpenedEnsemble),
        StrategySpec("iese-calibrated", "IESE rescaled by a temperature fitted on the validation frames (NLL)",
                     CalibratedEnsemble),
    ]
