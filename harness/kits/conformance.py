"""Conformance tests for teacher strategies: what every strategy must do, checked on synthetic histories.

A strategy package tests itself by subclassing :class:`StrategyConformance` in one of its test modules::

    from harness.kits.conformance import StrategyConformance

    class TestMyStrategy(StrategyConformance):
        strategy_name = "my-strategy"      # the name its StrategySpec registers
        params = {"k": 2}                  # strategy_params for the factory (optional)

pytest then runs, for multi-label and multi-class histories with one and with three teacher seeds: the
strategy is discoverable through the plugin registry; its selection refers to existing seeds and epochs
with valid weights; its soft labels have the shape of the training probabilities, dtype float32, values in
[0, 1] and (multi-class) rows summing to 1; it is deterministic; it does not modify the histories. A failure
says which strategy, which check and what was wrong.

Window rules have their kit too: subclass :class:`WindowRuleConformance` and set ``rule_name`` (and
``params``); on multi-label and multi-class histories of 8, 2 and 1 epochs, constant histories and one
without validation frames, it checks that the rule is discoverable, returns a sorted non-empty subset of the
history's epochs, is deterministic, leaves the history untouched and describes itself.

Datasets have theirs: subclass :class:`DatasetConformance` and set ``dataset_name`` (and ``options``,
``label_file``); it synthesizes the dataset's look-alike into a temporary directory and checks that the
dataset is discoverable, that ``check()`` finds no problem in it, that the splits are disjoint, non-empty and
name only indexed videos, that labels are aligned with frames and have the task's shape, dtype and class
count, that ``evaluate`` returns its primary metric, every metric in [0, 1], and scores perfect predictions
at least as high as random ones, that the fingerprint survives a copy elsewhere and follows the label file,
and that the frame store builds frames from the index (see ``docs/datasets.md``).

This module is also a pytest plugin (entry point ``pytest11``): it provides the fixture
``sdbench_teachers``, a factory of the same synthetic histories for a package's own tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pytest

from harness.data.dataset import Dataset, FrameIndex
from harness.kits.dataset_checks import (PARTS, check_fingerprint_follows_the_label_file,
                                         check_fingerprint_survives_a_copy, check_frames, check_index,
                                         check_no_problems, check_scores, check_splits)
from harness.kits.strategy_checks import (check_deterministic, check_no_mutation, check_registered, check_selection,
                                          check_soft_labels, check_window, check_window_describes_itself,
                                          check_window_deterministic, check_window_no_mutation)
from harness.kits.synthetic import (EPOCHS, SCENARIOS, WINDOW_SCENARIOS, ConformanceError, synthetic_teachers,
                                    window_history)
from harness.science.strategy import Strategy, Teachers, soft_labels
from harness.science.windows import WindowRule, window_rule
from harness.train.history import TeacherHistory

# -- the pytest side -----------------------------------------------------------------------------------


class StrategyConformance:
    """Subclass in a test module, set ``strategy_name`` (and ``params``): pytest runs every check."""

    strategy_name: str = ""
    params: Mapping[str, Any] = {}

    def make_strategy(self) -> Strategy:
        from harness.hooks.registry import get_registry

        return get_registry().get("strategy", self.strategy_name).factory(**dict(self.params))

    @pytest.fixture(scope="class", params=list(SCENARIOS))
    @classmethod
    def teachers(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Teachers:
        task, seeds = SCENARIOS[request.param]
        return synthetic_teachers(tmp_path_factory.mktemp(request.param), task, seeds)

    def test_is_discoverable(self) -> None:
        check_registered("strategy", self.strategy_name)
        strategy = self.make_strategy()
        if not isinstance(strategy, Strategy):
            raise ConformanceError(f"strategy '{self.strategy_name}': its factory returned {strategy!r}, expected "
                                   "a harness.science.strategy.Strategy")

    def test_selects_existing_checkpoints(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)

    def test_soft_labels_are_probabilities(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_soft_labels(self.strategy_name, soft_labels(strategy, teachers, seed)[1], teachers, seed)

    def test_is_deterministic(self, teachers: Teachers) -> None:
        strategy = self.make_strategy()
        for seed in teachers:
            check_selection(self.strategy_name, strategy.select(teachers, seed), teachers, seed)
            check_deterministic(self.strategy_name, self.make_strategy, teachers, seed)

    def test_does_not_mutate_histories(self, teachers: Teachers) -> None:
        for seed in teachers:
            check_no_mutation(self.strategy_name, self.make_strategy(), teachers, seed)


class WindowRuleConformance:
    """Subclass in a test module, set ``rule_name`` (and ``params``): pytest runs every window-rule check."""

    rule_name: str = ""
    params: Mapping[str, Any] = {}

    def make_rule(self) -> WindowRule:
        return window_rule({"name": self.rule_name, **dict(self.params)})

    @pytest.fixture(scope="class", params=list(WINDOW_SCENARIOS))
    @classmethod
    def history(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TeacherHistory:
        return window_history(tmp_path_factory.mktemp(request.param), *WINDOW_SCENARIOS[request.param])

    def test_is_discoverable(self) -> None:
        check_registered("window", self.rule_name, "window rule")
        rule = self.make_rule()
        if not isinstance(rule, WindowRule):
            raise ConformanceError(f"window rule '{self.rule_name}': its factory returned {rule!r}, expected a "
                                   "harness.science.windows.WindowRule")

    def test_describes_itself(self) -> None:
        check_window_describes_itself(self.rule_name, self.make_rule())

    def test_window_is_a_sorted_subset_of_the_epochs(self, history: TeacherHistory) -> None:
        check_window(self.rule_name, self.make_rule().window(history), history)

    def test_is_deterministic(self, history: TeacherHistory) -> None:
        check_window_deterministic(self.rule_name, self.make_rule, history)

    def test_does_not_mutate_the_history(self, history: TeacherHistory) -> None:
        check_window_no_mutation(self.rule_name, self.make_rule(), history)


class DatasetConformance:
    """Subclass in a test module, set ``dataset_name`` (and ``options``, ``label_file``): pytest synthesizes the
    dataset's look-alike once per class into a temporary directory and runs every dataset check on it.

    Override :meth:`synthesize` to write a smaller look-alike than the dataset's own ``synthesize``."""

    dataset_name: str = ""
    options: Mapping[str, Any] = {}
    """Dataset options besides ``root`` (which the kit sets to the look-alike's directory)."""
    label_file: str | None = None
    """A label file of the look-alike, relative to its root, whose bytes the fingerprint must follow; None for a
    dataset whose fingerprint is its generator's version and options (data it generates itself)."""

    @classmethod
    def make_dataset(cls, root: Path) -> Dataset:
        from harness.hooks.registry import get_registry

        return get_registry().get("dataset", cls.dataset_name).factory({**dict(cls.options), "root": str(root)})

    @classmethod
    def synthesize(cls, directory: Path) -> None:
        """Write the look-alike into ``directory`` (which does not exist yet): the dataset's ``synthesize``, or
        for a dataset without one its ``prepare`` (a dataset that generates its data under its root)."""
        dataset = cls.make_dataset(directory)
        if type(dataset).synthesize.__func__ is Dataset.synthesize.__func__:
            dataset.prepare()
        else:
            dataset.synthesize(directory)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset_root(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """The look-alike's directory; read-only for the checks (those that change files change a copy)."""
        check_registered("dataset", cls.dataset_name)
        root = tmp_path_factory.mktemp(cls.dataset_name) / "data"
        cls.synthesize(root)
        return root

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, dataset_root: Path) -> Dataset:
        return cls.make_dataset(dataset_root)

    @pytest.fixture(scope="class")
    @classmethod
    def index(cls, dataset: Dataset) -> FrameIndex:
        dataset.prepare()
        return dataset.index()

    def test_is_discoverable(self, tmp_path: Path) -> None:
        check_registered("dataset", self.dataset_name)
        dataset = self.make_dataset(tmp_path)
        if not isinstance(dataset, Dataset) or dataset.name != self.dataset_name:
            raise ConformanceError(f"dataset '{self.dataset_name}': its factory returned {dataset!r}, expected a "
                                   f"harness.data.dataset.Dataset named {self.dataset_name!r}")

    def test_check_finds_no_problem_in_the_look_alike(self, dataset: Dataset) -> None:
        check_no_problems(self.dataset_name, dataset)

    def test_labels_are_aligned_with_frames(self, dataset: Dataset, index: FrameIndex) -> None:
        check_index(self.dataset_name, dataset, index)

    def test_splits_are_disjoint_and_name_indexed_videos(self, dataset: Dataset, index: FrameIndex) -> None:
        check_splits(self.dataset_name, dataset.splits(), index)

    def test_evaluate_scores_perfect_predictions_above_random(self, dataset: Dataset, index: FrameIndex) -> None:
        check_splits(self.dataset_name, dataset.splits(), index)
        check_scores(self.dataset_name, dataset, index, dataset.splits()[0].test)

    def test_fingerprint_survives_a_copy(self, dataset_root: Path, tmp_path: Path) -> None:
        check_fingerprint_survives_a_copy(self.dataset_name, self.make_dataset, dataset_root, tmp_path / "copy")

    def test_fingerprint_follows_the_label_file(self, dataset_root: Path, tmp_path: Path) -> None:
        if self.label_file is None:
            pytest.skip(f"dataset '{self.dataset_name}' declares no label_file: its fingerprint is its generator's")
        copy = Path(shutil.copytree(dataset_root, tmp_path / "copy"))
        check_fingerprint_follows_the_label_file(self.dataset_name, self.make_dataset, copy, self.label_file)

    def test_frame_store_builds_frames(self, dataset: Dataset, index: FrameIndex, tmp_path: Path) -> None:
        """One video of each part of the first split, enough to show that the sources can be decoded."""
        split = dataset.splits()[0]
        videos = [index.videos[getattr(split, part)[0]] for part in PARTS]
        check_frames(self.dataset_name, dataset, videos, tmp_path / "store")


@pytest.fixture
def sdbench_teachers(tmp_path: Path) -> Callable[..., dict[int, TeacherHistory]]:
    """``sdbench_teachers(task="multilabel", seeds=(0,), epochs=8)``: synthetic teacher histories by seed."""
    count = iter(range(1_000_000))

    def make(task: str = "multilabel", seeds: Sequence[int] = (0,), epochs: int = EPOCHS) -> dict[int, TeacherHistory]:
        return synthetic_teachers(tmp_path / f"teachers-{next(count)}", task, seeds, epochs)

    return make
