"""Window rules: the conformance kit over every registered rule, each built-in rule's window on hand-made
histories, the resolver (names, mappings, legacy flat parameters, errors) and the soft-label cache key."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.hooks.registry import Registry, get_registry
from harness.kits.conformance import (SCENARIOS, WINDOW_SCENARIOS, ConformanceError, WindowRuleConformance,
                                      check_selection, check_soft_labels, check_window, check_window_deterministic,
                                      synthetic_teachers, window_history)
from harness.science import windows
from harness.science.selection import DEFAULT_WINDOW, WindowRule, nll, strategy_window, window_rule
from harness.science.strategy import Checkpoint, soft_labels
from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory

PARAMS = {"epochs": {"epochs": [1]}}  # rules whose factory needs parameters, for the conformance kit
BUILTIN = ["band", "epochs", "fit-relative", "loss-knee", "val-nll", "generalisation-gap"]

# The kit runs over every registered rule, so a new built-in one is tested without anyone adding a test.
for _name in get_registry().names("window"):
    _class = type(f"TestWindowConformance_{_name.replace('-', '_')}", (WindowRuleConformance,),
                  {"rule_name": _name, "params": PARAMS.get(_name, {})})
    globals()[_class.__name__] = _class


def strategy(name: str, **params):
    return get_registry().get("strategy", name).factory(**params)


def build(directory: Path, fit: list[float], val: list[float], losses: list[float] | None = None,
          scores: list[float] | None = None, task: str = "multilabel") -> TeacherHistory:
    """A history whose every true training label gets probability ``fit[e]`` and every true validation label
    ``val[e]`` (the other entries ``1 - p``, or ``(1 - p) / 2`` per class for multi-class), so that the fit
    confidence is ``fit[e]``, the validation confidence ``val[e]`` and the validation NLL ``-log val[e]``."""
    labels = (np.array([[1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=np.uint8) if task == "multilabel"
              else np.array([0, 2, 1, 2]))
    losses = losses or [1.0 / e for e in range(1, len(fit) + 1)]
    scores = scores or [0.5] * len(fit)

    def probs(p: float) -> np.ndarray:
        if task == "multilabel":
            return np.where(labels == 1, p, 1 - p).astype(np.float32)
        out = np.full((len(labels), 3), (1 - p) / 2, dtype=np.float32)
        out[np.arange(len(labels)), labels] = p
        return out

    writer = HistoryWriter(directory, 0, task, "mAP", labels, labels)
    for epoch, (f, v, loss, score) in enumerate(zip(fit, val, losses, scores), start=1):
        writer.add_epoch(EpochRecord(epoch, loss, {"mAP": score}), probs(f), probs(v))
    return TeacherHistory(directory)


# A teacher on noisy labels: it learns the clean signal, then memorises (fit confidence -> 1, training loss
# -> 0, the validation confidence falls again so the validation NLL rises after epoch 5).
# Epoch:         1     2     3     4     5     6     7     8
FIT = [0.30, 0.45, 0.60, 0.70, 0.78, 0.86, 0.93, 0.97]
VAL = [0.30, 0.44, 0.56, 0.62, 0.64, 0.63, 0.60, 0.57]
LOSS = [1.00, 0.45, 0.35, 0.28, 0.22, 0.15, 0.09, 0.05]
SCORE = [0.20, 0.40, 0.55, 0.60, 0.62, 0.63, 0.61, 0.60]


@pytest.fixture
def noisy(tmp_path: Path) -> TeacherHistory:
    return build(tmp_path / "noisy", FIT, VAL, LOSS, SCORE)


@pytest.mark.parametrize("spec, expected", [
    # fit confidence in [0.5, 0.85]: 3, 4, 5; val >= 0.9 x 0.63 = 0.567 drops epoch 3 (0.55)
    ("band", [4, 5]),
    # fit confidence rescaled by (c - 0.30) / 0.67: 0, .22, .45, .60, .72, .84, .94, 1 -> [0.25, 0.75]: 3, 4, 5
    ("fit-relative", [3, 4, 5]),
    ({"name": "fit-relative", "low": 0.5, "high": 1.0}, [4, 5, 6, 7, 8]),
    # the loss knee: rescaled loss .42 at epoch 2 lies .44 below the chord (the most); min val NLL: epoch 5
    ("loss-knee", [2, 3, 4, 5]),
    # the largest validation confidence 0.64 at epoch 5; within 5%: -log 0.63 = 0.462 <= 1.05 x 0.446 = 0.469
    ("val-nll", [5]),
    ({"name": "val-nll", "tolerance": 0.05}, [5, 6]),
    # gap fit - val: 0, .01, .04, .08, .14, ... .40; rescaled .35 > 0.25 at epoch 5; val >= 0.567 keeps 4
    ("generalisation-gap", [4]),
    ({"name": "generalisation-gap", "margin": 0.5, "min_val_ratio": 0.0}, [1, 2, 3, 4, 5]),
    ({"name": "epochs", "epochs": [6, 2, 2]}, [2, 6]),
])
def test_each_rule_picks_its_epochs(noisy, spec, expected):
    assert window_rule(spec).window(noisy) == expected


def test_multiclass_histories_give_the_same_windows(tmp_path: Path, noisy):
    multiclass = build(tmp_path / "mc", FIT, VAL, LOSS, SCORE, task="multiclass")
    for name in BUILTIN[2:]:
        assert window_rule(name).window(multiclass) == window_rule(name).window(noisy), name


def test_nll_multiclass_and_multilabel():
    assert nll(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]), np.array([0, 1])) == pytest.approx(
        -(math.log(0.5) + math.log(0.8)) / 2)
    assert nll(np.array([[0.9, 0.2]]), np.array([[1, 0]])) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2)
    assert nll(np.array([[1.0, 0.0]]), np.array([[0, 1]])) == pytest.approx(-math.log(1e-12))  # clipped, finite
    assert math.isnan(nll(np.zeros((0, 2)), np.zeros((0, 2))))


def test_fit_relative_on_a_constant_curve_takes_every_epoch(tmp_path: Path):
    assert window_rule("fit-relative").window(build(tmp_path, [0.7] * 4, [0.6] * 4)) == [1, 2, 3, 4]


def test_fit_relative_falls_back_to_the_epoch_closest_to_the_band(tmp_path: Path):
    # rescaled 0, 0, 1, 1: every epoch is 0.25 from the band; the earliest
    assert window_rule("fit-relative").window(build(tmp_path, [0.1, 0.1, 0.9, 0.9], [0.5] * 4)) == [1]


def test_loss_knee_without_a_knee_starts_at_the_first_epoch(tmp_path: Path):
    # a straight loss line has no point below its chord; the validation NLL is lowest at epoch 3
    history = build(tmp_path, [0.5] * 5, [0.5, 0.6, 0.7, 0.6, 0.5], losses=[1.0, 0.8, 0.6, 0.4, 0.2])
    assert window_rule("loss-knee").window(history) == [1, 2, 3]


def test_loss_knee_ends_at_the_knee_when_the_nll_already_rises(tmp_path: Path):
    # loss rescaled 1, .22, .11, .06, 0: epoch 2 lies farthest (.53) below the chord; the NLL rises from epoch 1
    history = build(tmp_path, [0.5] * 5, [0.9, 0.8, 0.7, 0.6, 0.5], losses=[1.0, 0.3, 0.2, 0.15, 0.1])
    assert window_rule("loss-knee").window(history) == [2]


def test_val_nll_takes_the_earliest_of_tied_epochs(tmp_path: Path):
    assert window_rule("val-nll").window(build(tmp_path, [0.5] * 4, [0.6, 0.8, 0.8, 0.7])) == [2]


def test_val_nll_without_validation_frames_takes_the_best_validation_epoch(tmp_path: Path):
    history = window_history(tmp_path, "multiclass", "no-val", 5)  # scores 0.1 x epoch
    assert window_rule("val-nll").window(history) == [5]
    assert window_rule("loss-knee").window(history) == [2]  # the 1 / e loss's knee; no NLL to end it later


def test_generalisation_gap_constant_gap_never_ends_the_window(tmp_path: Path):
    history = build(tmp_path, [0.3, 0.5, 0.7, 0.9], [0.3, 0.5, 0.7, 0.9], scores=[0.1, 0.5, 0.6, 0.58])
    assert window_rule("generalisation-gap").window(history) == [3, 4]  # val >= 0.54


def test_generalisation_gap_falls_back_to_the_best_validation_epoch_before_the_cut(tmp_path: Path):
    # the gap jumps at epoch 3, before the validation score reaches 0.9 x its best (epoch 4)
    history = build(tmp_path, [0.3, 0.4, 0.9, 0.95], [0.3, 0.4, 0.5, 0.5], scores=[0.2, 0.3, 0.5, 0.9])
    assert window_rule("generalisation-gap").window(history) == [2]


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("name", BUILTIN)
def test_short_runs(tmp_path: Path, name: str, epochs: int):
    history = build(tmp_path, FIT[:epochs], VAL[:epochs], LOSS[:epochs], SCORE[:epochs])
    window = window_rule({"name": name, **PARAMS.get(name, {})}).window(history)
    check_window(name, window, history)


def test_the_default_is_the_rule_chosen_by_measured_regret():
    assert DEFAULT_WINDOW == windows.DEFAULT_WINDOW == "loss-knee"
    assert window_rule().name == "loss-knee"


def test_band_is_the_original_rule(noisy):
    rule = window_rule("band")
    assert rule.name == "band" and rule.params() == {"low": 0.5, "high": 0.85, "min_val_ratio": 0.9}
    assert rule.describe() == "band: fit confidence in [0.5, 0.85], val >= 0.9 x best"


# -- the resolver and the strategies' parameters -------------------------------------------------------


def test_resolver_takes_a_name_or_a_mapping():
    assert window_rule("val-nll").tolerance == 0.0
    assert window_rule({"name": "val-nll", "tolerance": 0.1}).tolerance == 0.1
    rule = window_rule("loss-knee")
    assert window_rule(rule) is rule
    assert json.loads(json.dumps(rule.key())) == {"name": "loss-knee", "version": 1, "params": {}}


@pytest.mark.parametrize("spec, message", [
    ("bnd", r"unknown window rule 'bnd'; did you mean 'band'\?.*Available: band, epochs, fit-relative"),
    ({"name": "val-nl"}, r"unknown window rule 'val-nl'; did you mean 'val-nll'\?"),
    ({"tolerance": 0.1}, r"a window mapping needs a rule 'name'"),
    (3, r"window must be a rule name or a mapping"),
    ({"name": "band", "low": 0.9, "high": 0.1}, r"window rule 'band': window bounds must satisfy 0 <= low <= high"),
    ({"name": "val-nll", "tol": 0.1}, r"window rule 'val-nll': .*unexpected keyword argument 'tol'"),
    ({"name": "val-nll", "tolerance": -1}, r"window rule 'val-nll': tolerance must be a finite number >= 0"),
    ({"name": "fit-relative", "high": 2}, r"window rule 'fit-relative': high must be in \[0, 1\]"),
    ({"name": "epochs"}, r"window rule 'epochs': .*missing 1 required positional argument: 'epochs'"),
    ({"name": "epochs", "epochs": []}, r"window rule 'epochs': epochs must be a non-empty list of positive"),
    ({"name": "epochs", "epochs": [1.5]}, r"window rule 'epochs': epochs must be a non-empty list of positive"),
])
def test_resolver_errors_are_config_errors_naming_the_rule(spec, message):
    with pytest.raises(ConfigError, match=message):
        window_rule(spec)


def test_strategies_choose_their_rule_with_window(noisy):
    teachers = {0: noisy}
    assert strategy("iee", window="val-nll").select(teachers, 0).checkpoints == (Checkpoint(0, 5),)
    selection = strategy("it", window={"name": "fit-relative"}).select(teachers, 0)
    assert selection.checkpoints == (Checkpoint(0, 5),)  # best val among 3, 4, 5
    assert "fit-relative: fit confidence rescaled" in selection.note
    iese = strategy("iese-weighted", tau=0.01, window="loss-knee").select(teachers, 0)
    assert iese.checkpoints == tuple(Checkpoint(0, e) for e in (2, 3, 4, 5)) and "loss-knee" in iese.note


def test_legacy_flat_parameters_still_work():
    assert strategy("iee", low=0.6).rule.key() == window_rule({"name": "band", "low": 0.6}).key()
    assert strategy("iee", epochs=[3, 4]).rule.key() == window_rule({"name": "epochs", "epochs": [3, 4]}).key()
    assert strategy("iee").rule.key() == window_rule().key()
    assert WindowRule.from_params(min_val_ratio=0.5).params()["min_val_ratio"] == 0.5  # the sweep's entry point
    assert WindowRule.from_params(window="val-nll").name == "val-nll"


@pytest.mark.parametrize("params, message", [
    ({"window": "band", "low": 0.5}, r"give either 'window' or the flat window parameters low, not both"),
    ({"window": "val-nll", "epochs": [1], "high": 0.9}, r"flat window parameters high, epochs, not both"),
    ({"epochs": [1], "low": 0.5}, r"'epochs' and low are parameters of two different window rules"),
])
def test_mixing_window_with_flat_parameters_is_an_error(params, message):
    with pytest.raises(ConfigError, match=message):
        strategy("iese", **params)
    with pytest.raises(ConfigError, match=message):
        strategy_window(**params)


@pytest.mark.parametrize("scenario", ["multilabel-3-seeds", "multiclass-3-seeds"])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_rule_drives_every_window_strategy(tmp_path: Path, scenario: str, name: str):
    task, seeds = SCENARIOS[scenario]
    teachers = synthetic_teachers(tmp_path, task, seeds)
    window = {"name": name, **PARAMS.get(name, {})}
    for strategy_name in ("it", "iee", "iese", "iese-weighted", "iese-sharpened", "iese-calibrated"):
        chosen = strategy(strategy_name, window=window)
        assert chosen.rule.describe() in chosen.select(teachers, 0).note
        for seed in seeds:
            check_selection(strategy_name, chosen.select(teachers, seed), teachers, seed)
            check_soft_labels(strategy_name, soft_labels(chosen, teachers, seed)[1], teachers, seed)


# -- the soft-label cache key --------------------------------------------------------------------------


def test_soft_label_key_changes_with_the_default_rule_and_a_rule_version(tmp_path: Path, monkeypatch, noisy):
    from harness.config import load_config
    from harness.experiments.run import Runner
    from plugins.strategies.windows import Band

    runner = Runner(load_config(), tmp_path / "run", get_registry())
    teachers = {0: ("teacher-key", noisy)}

    def key(name: str = "iee", **params) -> str:
        return runner.soft_labels(name, strategy(name, **params), 0, teachers, params=params)[0]

    monkeypatch.setattr(windows, "DEFAULT_WINDOW", "band")
    band = key()
    assert key() == band  # reused, not recomputed
    assert key(window="band") != band  # other config parameters, same soft labels: another key
    monkeypatch.setattr(windows, "DEFAULT_WINDOW", "fit-relative")
    assert key() != band
    monkeypatch.setattr(windows, "DEFAULT_WINDOW", "band")
    assert key() == band
    monkeypatch.setattr(Band, "version", 2)
    assert key() != band
    # strategies without a window keep the key they had before window rules existed
    assert runner.plan.teaching_key("best-val", {}, 0, {0: "teacher-key"}, strategy("best-val").cache_identity()) \
        == runner.plan.teaching_key("best-val", {}, 0, {0: "teacher-key"})


# -- the registry, the CLI and the kit's own failures --------------------------------------------------


def test_builtin_rules_register_through_the_hook():
    registry = Registry(entry_points=False)
    assert registry.names("window") == BUILTIN
    assert all(reg.provider.distribution == "sdbench" for reg in registry.all("window").values())


def test_bench_plugins_lists_window_rules(capsys):
    from harness.cli import main

    assert main(["plugins"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[1] for row in rows if row[0] == "window"][:len(BUILTIN)] == BUILTIN


def test_window_scenarios_cover_short_constant_and_validation_free_runs():
    assert {shape for _, shape, _ in WINDOW_SCENARIOS.values()} == {"8-epochs", "2-epochs", "1-epoch", "constant",
                                                                   "no-val"}


class Broken(WindowRule):
    name = "broken"

    def __init__(self, result):
        self.result = result

    def window(self, history):
        return self.result

    def describe(self):
        return "broken"


@pytest.mark.parametrize("result, message", [
    ([], r"window rule 'broken', teacher seed 0 with epochs \[1, 2, 3, 4, 5, 6, 7, 8\]: window\(\) returned no epoch"),
    ([3, 2], r"returned \[3, 2\], expected distinct epochs in increasing order"),
    ([2, 9], r"returned epochs \[9\] that the history does not have"),
    ((1, 2), r"window\(\) returned \(1, 2\), expected a list of int epochs"),
])
def test_bad_windows_are_named(tmp_path: Path, result, message):
    history = synthetic_teachers(tmp_path, "multiclass", (0,))[0]
    with pytest.raises(ConformanceError, match=message):
        check_window("broken", Broken(result).window(history), history)


def test_nondeterministic_rule_is_named(tmp_path: Path):
    history = synthetic_teachers(tmp_path, "multiclass", (0,))[0]
    calls = iter(range(10))

    with pytest.raises(ConformanceError, match=r"window rule 'coin': not deterministic; the same history gave"):
        check_window_deterministic("coin", lambda: Broken([1 + next(calls) % 2]), history)


def test_mutating_rule_is_named(tmp_path: Path):
    from harness.kits.conformance import check_window_no_mutation

    class Tamper(Broken):
        def window(self, history):
            (history.directory / "probs" / "val_001.npy").write_bytes(b"")
            return [1]

    history = synthetic_teachers(tmp_path, "multilabel", (0,))[0]
    with pytest.raises(ConformanceError, match=r"window rule 'tamper': changed the teacher history, which must stay "
                                               r"read-only: .*probs/val_001.npy"):
        check_window_no_mutation("tamper", Tamper([1]), history)


def test_an_unregistered_rule_is_not_discoverable():
    class Missing(WindowRuleConformance):
        rule_name = "no-such-rule"

    with pytest.raises(ConformanceError, match="window rule 'no-such-rule' is not registered. Is its package "
                                               "installed with an 'sdbench' entry point?"):
        Missing().test_is_discoverable()


def test_the_documented_example_rule_conforms(tmp_path: Path):
    import re
    import types

    from harness.kits.conformance import check_window_describes_itself, check_window_no_mutation

    section = (Path(__file__).resolve().parent.parent / "docs" / "strategies.md").read_text()
    code = re.search(r"```python\n(.*?)```", section.split("## Window rules", 1)[1], re.S).group(1)
    module = types.ModuleType("docs_window_example")
    exec(compile(code, "docs/strategies.md", "exec"), module.__dict__)
    (spec,) = module.sdbench_window_rules()
    assert spec.name == "last-k"
    for number, (task, shape, epochs) in enumerate(WINDOW_SCENARIOS.values()):
        history = window_history(tmp_path / str(number), task, shape, epochs)
        check_window("last-k", spec.factory(k=2).window(history), history)
        check_window_deterministic("last-k", lambda: spec.factory(k=2), history)
        check_window_no_mutation("last-k", spec.factory(), history)
    check_window_describes_itself("last-k", spec.factory())


def test_a_bad_window_in_the_config_names_the_strategy(tmp_path: Path):
    from harness.config import load_config
    from harness.runs.plan import Plan

    config = load_config(overrides={"strategies": ["iee"], "strategy_params": {"iee": {"window": "bnd"}}})
    with pytest.raises(ConfigError, match=r"strategy_params.iee: unknown window rule 'bnd'; did you mean 'band'\?"):
        Plan(config, get_registry()).resolve_strategies()


@pytest.mark.parametrize("key, message", [
    ({"version": 1, "params": {}}, r"key\(\) returned \{'version': 1, 'params': \{\}\}, expected a mapping with the "
                                   r"rule's 'name'"),
    ({"name": "", "params": {}}, r"expected a mapping with the rule's 'name'"),
    ("last-k", r"key\(\) returned 'last-k', expected a mapping"),
])
def test_a_key_that_does_not_name_the_rule_is_named(key, message):
    from harness.kits.conformance import check_window_describes_itself

    class Nameless(Broken):
        def key(self):
            return key

    with pytest.raises(ConformanceError, match=message):
        check_window_describes_itself("nameless", Nameless([1]))
