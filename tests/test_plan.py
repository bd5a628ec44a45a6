"""The plan alone: datasets, cells and job keys of a run, without training, decoding or torch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import load_config
from harness.hooks.registry import get_registry
from harness.runs.plan import Plan
from harness.runs.store import ArtifactStore


@pytest.fixture()
def plan() -> Plan:
    config = load_config(overrides={"datasets": ["demo-phases"], "strategies": ["hard", "best-val", "iese"],
                                    "seeds": [0, 1], "dataset_options": {"demo-phases": {"num_videos": 6}}})
    return Plan(config, get_registry())


def test_teachers_are_keyed_per_cell_and_seed_and_shared_by_every_strategy(plan: Plan) -> None:
    data, _ = plan.resolve_datasets()
    cells = plan.cells(data)
    assert [cell.describe() for cell in cells] == ["demo-phases/default/tiny"]
    keys = {seed: plan.teacher_job(cells[0], seed).key for seed in (0, 1)}
    assert keys[0] != keys[1] and keys == {seed: plan.teacher_job(cells[0], seed).key for seed in (0, 1)}
    fewer = Plan(replace(plan.config, strategies=("hard",)), plan.registry)
    assert fewer.teacher_job(fewer.cells(fewer.resolve_datasets()[0])[0], 0).key == keys[0]


def test_a_students_key_follows_its_soft_labels_content_not_its_strategy(plan: Plan) -> None:
    cell = plan.cells(plan.resolve_datasets()[0])[0]
    one = plan.student_job(cell, 0, "softlabels-a", "digest-1", "iee")
    assert plan.student_job(cell, 0, "softlabels-b", "digest-1", "iese").key == one.key
    assert plan.student_job(cell, 0, "softlabels-a", "digest-2", "iee").key != one.key
    assert plan.student_job(cell, 1, "softlabels-a", "digest-1", "iee").key != one.key
    first, _ = plan.teaching_key("iese", {}, 0, {0: "t0", 1: "t1"})
    assert plan.teaching_key("iese", {}, 0, {0: "t0", 1: "other"})[0] != first
    assert plan.teaching_key("iese", {"tau": 1}, 0, {0: "t0", 1: "t1"})[0] != first


def test_the_dry_run_counts_jobs_against_an_empty_store(plan: Plan, tmp_path: Path) -> None:
    text = plan.describe(ArtifactStore(tmp_path / "jobs"))
    assert "demo-phases: 1 split(s) x 1 backbone(s) x 2 seed(s) = 2 teachers (0 complete)" in text
    assert "soft-label jobs: 6" in text and "student jobs: at most 6" in text
    assert not (tmp_path / "jobs").exists()


def test_a_worker_takes_the_fingerprints_the_run_computed_instead_of_reading_the_data_again(plan: Plan) -> None:
    given = Plan(plan.config, plan.registry, {"demo-phases": "computed-by-the-run"})
    assert given.dataset("demo-phases").fingerprint == "computed-by-the-run"
    assert plan.dataset("demo-phases").fingerprint != "computed-by-the-run"
