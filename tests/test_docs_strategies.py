"""The complete example of docs/strategies.md works: it passes the conformance checks and selects what its
docstring says."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from harness.kits.conformance import (SCENARIOS, check_deterministic, check_selection, check_soft_labels,
                                      synthetic_teachers)
from harness.science.strategy import Checkpoint, soft_labels

DOCS = Path(__file__).resolve().parent.parent / "docs" / "strategies.md"


@pytest.fixture(scope="module")
def example() -> types.ModuleType:
    section = DOCS.read_text().split("## A complete example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.splitlines()) <= 35, "the example should stay short"
    module = types.ModuleType("docs_example")
    exec(compile(code, str(DOCS), "exec"), module.__dict__)
    return module


def test_example_registers_its_spec(example):
    (spec,) = example.sdbench_strategies()
    assert spec.name == "best-calibrated" and spec.factory(ratio=0.95).ratio == 0.95
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        spec.factory(ratio=0)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_example_passes_the_conformance_checks(example, tmp_path: Path, scenario: str):
    task, seeds = SCENARIOS[scenario]
    teachers = synthetic_teachers(tmp_path, task, seeds)
    for seed in seeds:
        check_selection("best-calibrated", example.BestCalibrated().select(teachers, seed), teachers, seed)
        check_soft_labels("best-calibrated", soft_labels(example.BestCalibrated(), teachers, seed)[1], teachers, seed)
        check_deterministic("best-calibrated", example.BestCalibrated, teachers, seed)


def test_example_takes_the_best_calibrated_near_best_epoch(example, make_history):
    # make_history gives probability c to true labels and 1 - c to the others, so the ECE is 1 - c.
    # Epochs scoring >= 0.9 x 0.62: 3, 4, 5 with confidences 0.6, 0.7, 0.8: epoch 5, not best-val epoch 4.
    history = make_history(0, [0.30, 0.45, 0.60, 0.70, 0.80, 0.90, 0.95], [0.1, 0.3, 0.58, 0.62, 0.60, 0.40, 0.30])
    selection = example.BestCalibrated().select({0: history}, 0)
    assert selection.checkpoints == (Checkpoint(0, 5),)
    assert selection.note == "lowest ECE of 3 near-best epochs"
