"""The literature's rivals (plugins/strategies/literature.py) on hand-made histories: the mutual information
checkpoint, the early-stopped teacher and the logit-averaging ensembles."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from harness.hooks.registry import get_registry
from harness.science.strategy import Checkpoint, Selection, Strategy, soft_labels
from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory
from plugins.strategies.literature import ensemble_task_information, logit_mean, task_mutual_information

LN2 = math.log(2.0)


def strategy(name: str, **params) -> Strategy:
    return get_registry().get("strategy", name).factory(**params)


def binary_entropy(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def write_history(directory: Path, task: str, labels: np.ndarray, epochs: list[tuple[float, np.ndarray]],
                  seed: int = 0) -> TeacherHistory:
    """A history whose epoch e has validation score ``epochs[e-1][0]`` and the probabilities
    ``epochs[e-1][1]`` on both its training and its validation frames (both labelled ``labels``)."""
    writer = HistoryWriter(directory, seed, task, "score", labels, labels)
    for epoch, (score, probs) in enumerate(epochs, start=1):
        probs = np.asarray(probs, dtype=np.float32)
        writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"score": score}), probs, probs)
    return TeacherHistory(directory)


def two_class(correct: list[float], labels: list[int]) -> np.ndarray:
    """Two-class probabilities giving ``correct[i]`` to frame i's label."""
    p = np.empty((len(labels), 2))
    for i, (c, y) in enumerate(zip(correct, labels)):
        p[i, y], p[i, 1 - y] = c, 1 - c
    return p


# -- the mutual information estimate ---------------------------------------------------------------------


def test_mutual_information_of_a_perfect_multiclass_predictor_is_the_label_entropy():
    labels = np.array([0, 0, 1, 2])
    perfect = np.eye(3)[labels]
    label_entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))  # = 1.5 ln 2
    assert task_mutual_information(perfect, labels, "multiclass") == pytest.approx(label_entropy, rel=1e-12)


def test_mutual_information_of_a_perfect_multilabel_predictor_averages_the_present_classes():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0]], dtype=np.uint8)
    # class 0: 2 of 4 positive (H = ln 2); class 1: 3 of 4 (H = H_b(1/4)); class 2 has no positive: left out
    expected = (LN2 + binary_entropy(0.25)) / 2
    assert task_mutual_information(labels.astype(float), labels, "multilabel") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("task, labels, row", [
    ("multiclass", np.array([0, 0, 1, 2]), [0.2, 0.5, 0.3]),
    ("multilabel", np.array([[1, 0], [0, 1], [1, 1], [0, 1]]), [0.9, 0.2]),
])
def test_mutual_information_of_a_constant_predictor_is_zero(task, labels, row):
    constant = np.tile(row, (len(labels), 1))
    assert task_mutual_information(constant, labels, task) == pytest.approx(0.0, abs=1e-15)


def test_mutual_information_of_a_soft_predictor_is_entropy_minus_its_confusion():
    # 0.8 on the true class of each frame, labels balanced: a binary symmetric channel, I = ln 2 - H_b(0.2)
    labels = [0, 1, 1, 0]
    probs = two_class([0.8] * 4, labels)
    assert task_mutual_information(probs, np.array(labels), "multiclass") == pytest.approx(
        LN2 - binary_entropy(0.2), rel=1e-12)
    # the same per class of a multi-label task
    multilabel = np.array(labels)[:, None]
    assert task_mutual_information(probs[:, 1:], multilabel, "multilabel") == pytest.approx(
        LN2 - binary_entropy(0.2), rel=1e-12)


def test_ensemble_information_of_two_draws():
    # Two independent 0.8-correct draws of a balanced label: I = H(A1, A2) - 2 H_b(0.2), where the draws
    # agree on the label with probability 0.64 + 0.04 = 0.68 (0.34 each way) and disagree with 0.32.
    labels = [0, 1, 1, 0]
    probs = two_class([0.8] * 4, labels)
    both = -2 * 0.34 * math.log(0.34) - 2 * 0.16 * math.log(0.16)
    assert ensemble_task_information([probs, probs], np.array(labels), "multiclass") == pytest.approx(
        both - 2 * binary_entropy(0.2), rel=1e-12)


def brute_force_information(members: list[np.ndarray], labels: list[int]) -> float:
    """I(Y; A_1..A_k) by enumerating every (y, a_1, ..., a_k) of the plug-in joint."""
    frames, values = members[0].shape
    joint = {}
    for cell in itertools.product(range(values), repeat=len(members) + 1):
        y, draws = cell[0], cell[1:]
        joint[cell] = sum(np.prod([m[i, a] for m, a in zip(members, draws)]) for i in range(frames)
                          if labels[i] == y) / frames
    p_y = {y: sum(v for c, v in joint.items() if c[0] == y) for y in range(values)}
    p_a = {}
    for cell, v in joint.items():
        p_a[cell[1:]] = p_a.get(cell[1:], 0.0) + v
    return sum(v * math.log(v / (p_y[c[0]] * p_a[c[1:]])) for c, v in joint.items() if v > 0)


def test_ensemble_information_matches_enumeration_and_never_decreases():
    rng = np.random.default_rng(0)
    labels = [0, 1, 2, 1, 0, 2]
    members = [rng.dirichlet(np.ones(3), size=6) for _ in range(3)]
    values = [ensemble_task_information(members[:k], np.array(labels), "multiclass") for k in (1, 2, 3)]
    for k, value in enumerate(values, start=1):
        assert value == pytest.approx(brute_force_information(members[:k], labels), rel=1e-10)
    assert values[0] <= values[1] <= values[2]


# -- mi-checkpoint ---------------------------------------------------------------------------------------

LABELS = [0, 1, 0, 1]


@pytest.fixture
def mi_history(tmp_path: Path) -> TeacherHistory:
    return write_history(tmp_path / "mi", "multiclass", np.array(LABELS), [
        (0.50, two_class([0.5] * 4, LABELS)),   # e1: uniform, I = 0
        (0.90, two_class([0.8] * 4, LABELS)),   # e2: best validation score, I = ln 2 - H_b(0.2)
        (0.70, two_class([1.0] * 4, LABELS)),   # e3: perfect, I = ln 2
        (0.60, two_class([0.6] * 4, LABELS)),   # e4
    ])


def test_mi_checkpoint_takes_the_most_informative_epoch_not_the_best_validation_score(mi_history):
    teachers = {0: mi_history}
    selection = strategy("mi-checkpoint").select(teachers, 0)
    assert selection.checkpoints == (Checkpoint(0, 3),)
    assert selection.note == f"validation I(Y; predictions) = {LN2:.4f} nats"
    assert strategy("best-val").select(teachers, 0).checkpoints == (Checkpoint(0, 2),)


def test_mi_checkpoint_ensemble_is_greedy_on_the_total_information(tmp_path: Path):
    # A is sure and right on frames 0-1 and uniform on 2-3; B is a weaker copy of A; C is right on 2-3.
    # Alone: I(A) = ln 2 - H_b(0.25) > I(B) = ln 2 - H_b(0.275) > I(C) = ln 2 - H_b(0.3), so the two best
    # alone are A and B, but C complements A: the greedy total takes A, then C.
    a = two_class([1.0, 1.0, 0.5, 0.5], LABELS)
    b = two_class([0.95, 0.95, 0.5, 0.5], LABELS)
    c = two_class([0.5, 0.5, 0.9, 0.9], LABELS)
    history = write_history(tmp_path / "greedy", "multiclass", np.array(LABELS),
                            [(0.5, two_class([0.5] * 4, LABELS)), (0.8, a), (0.7, b), (0.6, c)])
    singles = [task_mutual_information(m, np.array(LABELS), "multiclass") for m in (a, b, c)]
    np.testing.assert_allclose(singles, [LN2 - binary_entropy(p) for p in (0.25, 0.275, 0.3)], rtol=1e-6)
    with_b = brute_force_information([a, b], LABELS)
    with_c = brute_force_information([a, c], LABELS)
    assert with_c > with_b
    selection = strategy("mi-checkpoint", count=2).select({0: history}, 0)
    assert selection.checkpoints == (Checkpoint(0, 2), Checkpoint(0, 4))
    assert selection.note == f"validation I(Y; predictions) = {with_c:.4f} nats, greedy order e2 e4"
    _, soft = soft_labels(strategy("mi-checkpoint", count=2), {0: history}, 0)
    np.testing.assert_allclose(soft, (a + c) / 2, rtol=1e-6)


def test_mi_checkpoint_breaks_ties_by_validation_score_then_epoch(tmp_path: Path):
    uniform = two_class([0.5] * 4, LABELS)
    history = write_history(tmp_path / "ties", "multiclass", np.array(LABELS),
                            [(0.5, uniform), (0.7, uniform), (0.7, uniform), (0.6, uniform)])
    assert strategy("mi-checkpoint").select({0: history}, 0).checkpoints == (Checkpoint(0, 2),)


def test_mi_checkpoint_count_beyond_the_run_takes_every_epoch(mi_history):
    selection = strategy("mi-checkpoint", count=10).select({0: mi_history}, 0)
    assert selection.checkpoints == tuple(Checkpoint(0, e) for e in (1, 2, 3, 4))


def test_mi_checkpoint_multilabel(make_history):
    # make_history: probability c on every true label, 1 - c elsewhere; the most confident epoch is the
    # most informative whatever the validation score
    history = make_history(0, [0.6, 0.95, 0.8], [0.9, 0.5, 0.7])
    assert strategy("mi-checkpoint").select({0: history}, 0).checkpoints == (Checkpoint(0, 2),)


def test_mi_checkpoint_refuses_a_joint_table_too_large(mi_history, monkeypatch):
    import plugins.strategies.literature as literature

    monkeypatch.setattr(literature, "MAX_JOINT_CELLS", 8)
    assert strategy("mi-checkpoint", count=2).select({0: mi_history}, 0).checkpoints  # 2 ** 3 cells
    with pytest.raises(ValueError, match=r"count 3 needs a joint table of 2 \*\* 4 cells, more than 8"):
        strategy("mi-checkpoint", count=3).select({0: mi_history}, 0)


@pytest.mark.parametrize("count", [0, -1, 1.5, True, "2"])
def test_mi_checkpoint_rejects_a_bad_count(count):
    with pytest.raises(ValueError, match="count must be a whole number >= 1"):
        strategy("mi-checkpoint", count=count)


# -- early-stopped ---------------------------------------------------------------------------------------


def test_early_stopped_keeps_the_peak_before_a_long_plateau(make_history):
    # best 0.60 at epoch 2, then three epochs without improvement: stopped after epoch 5, before the later,
    # higher peak that best-val takes
    history = make_history(0, [0.5] * 6, [0.50, 0.60, 0.55, 0.58, 0.59, 0.70])
    teachers = {0: history}
    assert strategy("early-stopped").select(teachers, 0).checkpoints == (Checkpoint(0, 2),)
    assert strategy("best-val").select(teachers, 0).checkpoints == (Checkpoint(0, 6),)
    # a patience of 4 waits long enough to see the later peak
    assert strategy("early-stopped", patience=4).select(teachers, 0).checkpoints == (Checkpoint(0, 6),)


def test_early_stopped_equals_best_val_when_the_run_never_stalls(make_history):
    history = make_history(0, [0.5] * 5, [0.50, 0.60, 0.55, 0.58, 0.70])
    assert strategy("early-stopped").select({0: history}, 0).checkpoints == (Checkpoint(0, 5),)


def test_early_stopped_counts_only_improvements_beyond_min_delta(make_history):
    history = make_history(0, [0.5] * 5, [0.50, 0.60, 0.605, 0.61, 0.65])
    assert strategy("early-stopped", patience=2).select({0: history}, 0).checkpoints == (Checkpoint(0, 5),)
    stopped = strategy("early-stopped", patience=2, min_delta=0.02).select({0: history}, 0)
    assert stopped.checkpoints == (Checkpoint(0, 2),)


def test_early_stopped_takes_the_earliest_of_tied_scores(make_history):
    history = make_history(0, [0.5] * 6, [0.5, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert strategy("early-stopped").select({0: history}, 0).checkpoints == (Checkpoint(0, 2),)


@pytest.mark.parametrize("params, message", [
    ({"patience": 0}, "patience must be a whole number >= 1"),
    ({"patience": 2.5}, "patience must be a whole number >= 1"),
    ({"min_delta": -0.1}, "min_delta must be a finite number >= 0"),
    ({"min_delta": float("nan")}, "min_delta must be a finite number >= 0"),
])
def test_early_stopped_rejects_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        strategy("early-stopped", **params)


# -- logit averaging -------------------------------------------------------------------------------------


def test_iee_logits_averages_logits_of_two_checkpoints(make_history):
    teachers = {0: make_history(0, [0.6, 0.9], [0.5, 0.6])}
    selection, soft = soft_labels(strategy("iee-logits", epochs=[1, 2]), teachers, 0)
    assert selection.checkpoints == (Checkpoint(0, 1), Checkpoint(0, 2))
    assert selection.note.endswith("; mean of logits, T=1")
    # sigmoid((logit 0.6 + logit 0.9) / 2) = sqrt(1.5 x 9) / (1 + sqrt(1.5 x 9)) on the true labels
    true_prob = math.sqrt(13.5) / (1 + math.sqrt(13.5))
    labels = teachers[0].train_labels
    np.testing.assert_allclose(soft, np.where(labels == 1, true_prob, 1 - true_prob), rtol=1e-6)
    assert soft.dtype == np.float32
    _, prob_mean = soft_labels(strategy("iee", epochs=[1, 2]), teachers, 0)
    np.testing.assert_allclose(prob_mean, np.where(labels == 1, 0.75, 0.25), rtol=1e-6)
    assert not np.allclose(soft, prob_mean, atol=1e-3)


def test_iee_logits_multiclass_is_the_normalised_geometric_mean(make_history):
    labels = np.array([0, 2, 1, 2])
    teachers = {0: make_history(0, [0.6, 0.9], [0.5, 0.6], labels=labels, task="multiclass")}
    _, soft = soft_labels(strategy("iee-logits", epochs=[1, 2]), teachers, 0)
    # true class sqrt(0.6 x 0.9), the others sqrt(0.2 x 0.05) = 0.1, normalised
    true, other = math.sqrt(0.54), 0.1
    expected = np.full((4, 3), other / (true + 2 * other))
    expected[np.arange(4), labels] = true / (true + 2 * other)
    np.testing.assert_allclose(soft, expected, rtol=1e-6)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)


def entropy(probs: np.ndarray) -> float:
    p = np.asarray(probs, dtype=np.float64)
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)).mean())


def test_a_temperature_above_one_softens(make_history):
    teachers = {0: make_history(0, [0.6, 0.9], [0.5, 0.6])}
    _, plain = soft_labels(strategy("iee-logits", epochs=[1, 2]), teachers, 0)
    selection, soft = soft_labels(strategy("iee-logits", epochs=[1, 2], temperature=2.0), teachers, 0)
    assert selection.note.endswith("T=2") and selection.temperature == 1.0
    true_prob = sigmoid((logit(0.6) + logit(0.9)) / 4)
    labels = teachers[0].train_labels
    np.testing.assert_allclose(soft, np.where(labels == 1, true_prob, 1 - true_prob), rtol=1e-6)
    assert entropy(soft) > entropy(plain)
    _, sharp = soft_labels(strategy("iee-logits", epochs=[1, 2], temperature=0.5), teachers, 0)
    assert entropy(sharp) < entropy(plain)


def test_iese_logits_spans_the_seeds_of_iese(make_history):
    # the histories of test_strategies: both seeds' windows are epochs 3, 4, 5 with true-label confidences
    # 0.6, 0.7, 0.8 (seed 0) and 0.8, 0.7, 0.6 (seed 1)
    confidence, val = [0.30, 0.45, 0.60, 0.70, 0.80, 0.90, 0.95], [0.10, 0.30, 0.58, 0.60, 0.59, 0.62, 0.50]
    teachers = {0: make_history(0, confidence, val), 1: make_history(1, confidence[::-1], val[::-1])}
    selection, soft = soft_labels(strategy("iese-logits", window="band"), teachers, 0)
    assert selection.checkpoints == strategy("iese", window="band").select(teachers, 0).checkpoints
    assert selection.checkpoints == tuple(Checkpoint(s, e) for s in (0, 1) for e in (3, 4, 5))
    true_prob = sigmoid((logit(0.6) + logit(0.7) + logit(0.8)) / 3)
    labels = teachers[0].train_labels
    np.testing.assert_allclose(soft, np.where(labels == 1, true_prob, 1 - true_prob), rtol=1e-6)


@pytest.mark.parametrize("window", [{"epochs": [1, 2]}, {"window": {"name": "epochs", "epochs": [2, 3]}},
                                    {"window": "val-nll"}, {}])
def test_logit_ensembles_take_the_window_parameters_of_iee_and_iese(make_history, window):
    teachers = {s: make_history(s, [0.55, 0.7, 0.8, 0.9], [0.5, 0.6, 0.58, 0.55]) for s in (0, 1)}
    for logits, probabilities in (("iee-logits", "iee"), ("iese-logits", "iese")):
        chosen, reference = strategy(logits, **window), strategy(probabilities, **window)
        assert chosen.select(teachers, 1).checkpoints == reference.select(teachers, 1).checkpoints
        assert chosen.cache_identity() == reference.cache_identity()


def test_logit_mean_clips_certain_probabilities_and_weighs():
    probs = [np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])]
    clipped = logit_mean(probs, None, "multilabel")
    assert np.isfinite(clipped).all()
    np.testing.assert_allclose(clipped, [[sigmoid(logit(1 - 1e-7) / 2), sigmoid(logit(1e-7) / 2)]], rtol=1e-6)
    weighted = logit_mean([np.array([[0.9]]), np.array([[0.6]])], [3.0, 1.0], "multilabel")
    np.testing.assert_allclose(weighted, [[sigmoid((3 * logit(0.9) + logit(0.6)) / 4)]], rtol=1e-6)


@pytest.mark.parametrize("name", ["iee-logits", "iese-logits"])
@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), float("nan"), "2"])
def test_logit_ensembles_reject_a_bad_temperature(name, temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        strategy(name, temperature=temperature)


def test_logit_ensembles_need_the_task(make_history):
    with pytest.raises(TypeError, match="call combine_for"):
        strategy("iee-logits").combine([np.array([[0.5]])], None)
    with pytest.raises(ValueError, match="task must be one of"):
        logit_mean([np.array([[0.5]])], None, "regression")


def test_soft_labels_pass_the_task_to_combine_for(make_history):
    seen = []

    class Recording(Strategy):
        def select(self, teachers, seed):
            return Selection((Checkpoint(seed, 1),))

        def combine_for(self, task, probs, weights):
            seen.append(task)
            return super().combine_for(task, probs, weights)

    labels = np.array([0, 2, 1, 2])
    teachers = {0: make_history(0, [0.6], [0.5], labels=labels, task="multiclass")}
    _, soft = soft_labels(Recording(), teachers, 0)
    assert seen == ["multiclass"]
    np.testing.assert_allclose(soft, teachers[0].train_probs(1))  # the default: combine, the mean


def test_early_stopped_ranks_an_undefined_score_last(make_history):
    # a NaN first score is no best to beat: the run is not stopped at epoch 1 for want of beating NaN
    nan = float("nan")
    history = make_history(0, [0.5] * 5, [nan, 0.50, 0.60, 0.55, 0.70])
    assert strategy("early-stopped").select({0: history}, 0).checkpoints == (Checkpoint(0, 5),)
    assert strategy("best-val").select({0: history}, 0).checkpoints == (Checkpoint(0, 5),)
    # a NaN later on is an epoch without improvement; no score at all: the first epoch
    stalled = make_history(1, [0.5] * 5, [0.50, nan, nan, nan, 0.70])
    assert strategy("early-stopped").select({1: stalled}, 1).checkpoints == (Checkpoint(1, 1),)
    undefined = make_history(2, [0.5] * 3, [nan] * 3)
    assert strategy("early-stopped").select({2: undefined}, 2).checkpoints == (Checkpoint(2, 1),)
