"""Behaviour of harness.metrics.triplet: component disentangling and ivtmetrics' video-wise AP."""

import numpy as np
import pytest

from harness.metrics.triplet import COMPONENTS, component_scores, triplet_video_ap
from plugins.datasets.cholect45 import triplet_maps

MAPS = triplet_maps()
WIDTHS = {"ivt": 100, "i": 6, "v": 10, "t": 15, "iv": 26, "it": 59}


@pytest.mark.parametrize("component", COMPONENTS)
def test_component_widths(component):
    labels, scores = component_scores(np.zeros((3, 100), int), np.zeros((3, 100)), MAPS, component)
    assert labels.shape == scores.shape == (3, WIDTHS[component])


def test_two_triplets_sharing_an_instrument_give_the_max():
    # Triplets 0 <grasper, dissect, cystic_plate> and 1 <grasper, dissect, gallbladder>; nothing else scored.
    scores = np.zeros((2, 100))
    scores[0, [0, 1]] = [0.3, 0.7]
    scores[1, [0, 1]] = [0.9, 0.2]
    labels = np.zeros((2, 100), int)
    labels[0, 1] = 1
    labels[1, 0] = 1
    instrument_labels, instrument = component_scores(labels, scores, MAPS, "i")
    np.testing.assert_array_equal(instrument[:, 0], [0.7, 0.9])  # grasper = max of the two
    np.testing.assert_array_equal(instrument[:, 1:], 0.0)
    np.testing.assert_array_equal(instrument_labels[:, 0], [1, 1])
    _, verb = component_scores(labels, scores, MAPS, "v")
    np.testing.assert_array_equal(verb[:, 2], [0.7, 0.9])  # dissect
    _, target = component_scores(labels, scores, MAPS, "t")
    np.testing.assert_array_equal(target[:, [0, 1]], [[0.7, 0.3], [0.2, 0.9]])  # distinct targets stay apart
    # iv id 2 (grasper-dissect) is the third iv class: ids 0, 1, 2, ... are all used below 9.
    _, iv = component_scores(labels, scores, MAPS, "iv")
    np.testing.assert_array_equal(iv[:, 2], [0.7, 0.9])


def _random_case(rng, n_videos=3, frames=40):
    """Labels with every triplet (hence every component class) positive and negative in every video."""
    labels = (rng.random((n_videos * frames, 100)) < 0.3).astype(int)
    for v in range(n_videos):
        labels[v * frames, :] = 1
        labels[v * frames + 1, :] = 0
    scores = np.round(rng.random(labels.shape), 2)  # two decimals: ties
    return labels, scores, np.repeat(np.arange(n_videos), frames)


def test_ignore_null_drops_null_triplets_and_null_only_component_classes():
    labels, scores, videos = _random_case(np.random.default_rng(1))
    full = triplet_video_ap(labels, scores, videos, MAPS, "ivt")
    kept = triplet_video_ap(labels, scores, videos, MAPS, "ivt", ignore_null=True)
    np.testing.assert_array_equal(kept["classes"], np.arange(94))
    np.testing.assert_array_equal(kept["AP"], full["AP"][:94])
    assert kept["mAP"] == pytest.approx(np.mean(full["AP"][:94]), abs=1e-15)
    expected_dropped = {"i": [], "v": [9], "t": [14], "iv": [9, 19, 29, 39, 49, 59], "it": [14, 29, 44, 59, 74, 89]}
    for component, dropped in expected_dropped.items():
        full = triplet_video_ap(labels, scores, videos, MAPS, component)
        kept = triplet_video_ap(labels, scores, videos, MAPS, component, ignore_null=True)
        keep = ~np.isin(full["classes"], dropped)
        assert keep.sum() == WIDTHS[component] - len(dropped)
        np.testing.assert_array_equal(kept["classes"], full["classes"][keep])
        np.testing.assert_array_equal(kept["AP"], full["AP"][keep])


def test_class_absent_everywhere_is_nan_and_left_out_of_map():
    labels, scores, videos = _random_case(np.random.default_rng(2))
    labels[:, 5] = 0
    result = triplet_video_ap(labels, scores, videos, MAPS, "ivt")
    assert np.isnan(result["AP"][5])
    assert result["mAP"] == pytest.approx(np.mean(np.delete(result["AP"], 5)), abs=1e-15)


def test_unknown_component_rejected():
    with pytest.raises(ValueError, match="component must be one of"):
        component_scores(np.zeros((1, 100)), np.zeros((1, 100)), MAPS, "vt")


@pytest.fixture
def ivtmetrics_recognition():
    """ivtmetrics' Recognition class, with numpy's error state restored after it (it calls np.seterr)."""
    recognition = pytest.importorskip("ivtmetrics.recognition").Recognition
    saved = np.geterr()
    yield recognition
    np.seterr(**saved)


def _ivtmetrics_video_ap(recognition, labels, scores, videos, ignore_null):
    """``compute_video_AP`` of ivtmetrics for every component, videos fed in order."""
    metric = recognition(num_class=100)
    for v in np.unique(videos):
        metric.update(labels[videos == v], scores[videos == v])
        metric.video_end()
    return {component: metric.compute_video_AP(component, ignore_null=ignore_null) for component in COMPONENTS}


def test_equals_ivtmetrics_when_every_class_occurs_in_every_video(ivtmetrics_recognition):
    labels, scores, videos = _random_case(np.random.default_rng(0))
    theirs = _ivtmetrics_video_ap(ivtmetrics_recognition, labels, scores, videos, ignore_null=False)
    for component in COMPONENTS:
        ours = triplet_video_ap(labels, scores, videos, MAPS, component)
        np.testing.assert_allclose(ours["AP"], theirs[component]["AP"], rtol=0, atol=1e-9)
        assert ours["mAP"] == pytest.approx(theirs[component]["mAP"], abs=1e-9)


def test_ignore_null_equals_ivtmetrics_where_ivtmetrics_applies_it(ivtmetrics_recognition):
    labels, scores, videos = _random_case(np.random.default_rng(3))
    theirs = _ivtmetrics_video_ap(ivtmetrics_recognition, labels, scores, videos, ignore_null=True)
    for component in COMPONENTS:
        ours = triplet_video_ap(labels, scores, videos, MAPS, component, ignore_null=True)
        if component in ("ivt", "i"):  # ivt: ivtmetrics cuts 94-99; i: no class is null-only
            np.testing.assert_allclose(ours["AP"], theirs[component]["AP"], rtol=0, atol=1e-9)
            assert ours["mAP"] == pytest.approx(theirs[component]["mAP"], abs=1e-9)
        else:  # ivtmetrics ignores the flag here and keeps the null-only classes: ours are the rest
            all_ids = np.unique(MAPS[:, COMPONENTS.index(component)])
            kept = np.isin(all_ids, ours["classes"])
            np.testing.assert_allclose(ours["AP"], theirs[component]["AP"][kept], rtol=0, atol=1e-9)
