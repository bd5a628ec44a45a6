"""The demo datasets and the CholecT45 / Cholec80 readers they are read back with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.frames import FrameStore
from harness.errors import ConfigError, DataError
from plugins.datasets import demo
from plugins.datasets.cholec80 import PHASES, read_cholec80, write_phase_annotation
from plugins.datasets.cholect45 import read_cholect45, read_class_names, write_cholect45_labels

SMALL = 5  # videos in the quick variants: 1 train, 1 val, 3 test


@pytest.fixture(scope="module")
def triplets(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoTriplets:
    dataset = demo.DemoTriplets({"root": tmp_path_factory.mktemp("demo") / "triplets"})
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def phases(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoPhases:
    dataset = demo.DemoPhases({"root": tmp_path_factory.mktemp("demo") / "phases", "num_videos": SMALL})
    dataset.prepare()
    return dataset


def test_listing_the_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, plugins.datasets.demo as d; specs = d.sdbench_datasets(); "
            "print(sorted({'torch', 'PIL', 'av'} & set(sys.modules)), [s.name for s in specs])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[] ['demo-triplets', 'demo-phases']"


def test_generates_under_sdbench_home_with_a_completion_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SDBENCH_HOME", str(tmp_path))
    dataset = demo.DemoTriplets({"num_videos": SMALL})
    dataset.prepare()
    root = tmp_path / "demo" / "demo-triplets"
    assert (root / demo.MARKER).read_text() == dataset.fingerprint()
    assert [p.name for p in tmp_path.joinpath("demo").iterdir()] == ["demo-triplets"]  # no staging left


def test_incomplete_directory_is_regenerated(tmp_path: Path) -> None:
    dataset = demo.DemoTriplets({"root": tmp_path / "t", "num_videos": SMALL})
    dataset.prepare()
    (dataset.root / demo.MARKER).unlink()
    (dataset.root / "triplet" / "VID01.txt").write_text("garbage\n")
    dataset.prepare()
    assert len(dataset.index().videos["VID01"]) > 0


def test_triplet_index(triplets: demo.DemoTriplets) -> None:
    index = triplets.index()
    assert index.task == "multilabel" and index.num_classes == 100
    assert index.class_names[17] == "grasper,retract,gallbladder"
    assert list(index.videos) == [f"VID{i:02d}" for i in range(1, 13)]
    (split,) = triplets.splits()
    for name, video in index.videos.items():
        assert (30 <= len(video) <= 45) if name in split.train else (90 <= len(video) <= 110)
        assert video.labels.shape == (len(video), 100) and video.labels.dtype == np.uint8
        assert np.array_equal(video.frame_ids, np.arange(len(video)))
    labels, _ = index.labels(list(index.videos))
    counts = labels.sum(axis=0)
    assert 10 <= np.count_nonzero(counts) <= 12
    assert counts.max() > 5 * counts[counts > 0].min()  # some classes are rare
    assert (labels.sum(axis=1) == 0).any() and labels.sum(axis=1).max() >= 3


def test_component_labels_follow_the_triplets(triplets: demo.DemoTriplets) -> None:
    triplet = np.loadtxt(triplets.root / "triplet" / "VID01.txt", delimiter=",", dtype=int)
    components = {name: np.loadtxt(triplets.root / name / "VID01.txt", delimiter=",", dtype=int)
                  for name in ("instrument", "verb", "target")}
    assert [components[name].shape[1] for name in ("instrument", "verb", "target")] == [7, 11, 16]
    hook_dissect_gallbladder = triplet[:, 1 + 60] == 1
    assert hook_dissect_gallbladder.any()
    for name, column in (("instrument", 2), ("verb", 2), ("target", 0)):
        assert (components[name][hook_dissect_gallbladder, 1 + column] == 1).all()
    assert (triplets.root / "dict" / "maps.txt").read_text().startswith("#")


def test_phase_index_and_frames_match_labels(phases: demo.DemoPhases, tmp_path: Path) -> None:
    index = phases.index()
    assert index.task == "multiclass" and index.class_names == PHASES
    store = FrameStore(tmp_path)
    for video in index.videos.values():
        assert 45 <= len(video) <= 90
        assert video.labels.dtype == np.int64 and video.labels.shape == (len(video),)
        assert video.labels.min() >= 0 and video.labels.max() < len(PHASES)
        frames = store.frames(phases.name, phases.fingerprint(), video, 48)
        assert frames.shape == (len(video), 48, 48, 3)
    clean = index.videos[phases.splits()[0].test[0]].labels  # test videos carry the consensus annotation
    assert clean[0] in (0, 1) and clean[-1] in (5, 6)


@pytest.mark.parametrize("cls", [demo.DemoTriplets, demo.DemoPhases])
@pytest.mark.parametrize("num_videos", [demo.DEFAULT_VIDEOS, SMALL])
def test_splits_are_disjoint_and_cover_every_video(cls: type, num_videos: int) -> None:
    dataset = cls({"num_videos": num_videos})
    (split,) = dataset.splits()
    parts = [split.train, split.val, split.test]
    assert sum(map(len, parts)) == len(set().union(*parts)) == num_videos
    assert len(split.test) >= 3
    if num_videos == demo.DEFAULT_VIDEOS:
        assert (len(split.train), len(split.val), len(split.test)) == (6, 2, 4)


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="colour"):
        demo.DemoTriplets({"colour": "red"})


def test_fingerprint_depends_on_options() -> None:
    assert demo.DemoPhases({}).fingerprint() != demo.DemoPhases({"num_videos": 6}).fingerprint()
    assert demo.DemoPhases({}).fingerprint() != demo.DemoTriplets({}).fingerprint()


def test_triplet_generation_is_deterministic(tmp_path: Path) -> None:
    # A video's length and annotation depend on its split, so compare two datasets of the same size.
    first, again = (demo.DemoTriplets({"root": tmp_path / name, "num_videos": SMALL}) for name in "ab")
    first.prepare()
    again.prepare()
    for video in again.videos():
        for folder in ("triplet", "instrument", "verb", "target"):
            assert (again.root / folder / f"{video}.txt").read_bytes() == \
                (first.root / folder / f"{video}.txt").read_bytes()
        for png in sorted((again.root / "data" / video).iterdir()):
            assert png.read_bytes() == (first.root / "data" / video / png.name).read_bytes()


def test_phase_generation_is_deterministic(phases: demo.DemoPhases, tmp_path: Path) -> None:
    again = demo.DemoPhases({"root": tmp_path, "num_videos": SMALL})
    again.prepare()
    for video in again.videos():
        for name in (f"phase_annotations/{video}-phase.txt", f"videos/{video}.mp4"):
            assert (again.root / name).read_bytes() == (phases.root / name).read_bytes()


def test_triplet_evaluate_returns_video_wise_map(triplets: demo.DemoTriplets) -> None:
    index = triplets.index()
    labels, video_ids = index.labels(triplets.splits()[0].test)
    perfect = triplets.evaluate(labels, labels.astype(float), video_ids)
    noisy = triplets.evaluate(labels, 0.5 * labels + np.random.default_rng(0).random(labels.shape), video_ids)
    assert perfect["mAP"] == pytest.approx(1.0)
    assert 0 < noisy["mAP"] < 1


def test_phase_evaluate_returns_accuracy_and_f1(phases: demo.DemoPhases) -> None:
    labels, video_ids = phases.index().labels(phases.splits()[0].test)
    probs = np.eye(len(PHASES))[labels]
    scores = phases.evaluate(labels, probs, video_ids)
    assert scores["accuracy"] == pytest.approx(1.0) and scores["f1"] == pytest.approx(1.0)
    shifted = phases.evaluate(labels, np.roll(probs, 5, axis=0), video_ids)
    assert shifted["accuracy"] < 1


# --- the readers reject malformed input, naming file and line ------------------------------------------


def cholect45_tree(root: Path, rows: list[str]) -> Path:
    (root / "data" / "VID01").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(root / "data" / "VID01" / "000000.png")
    (root / "triplet").mkdir()
    label_file = root / "triplet" / "VID01.txt"
    label_file.write_text("\n".join(rows) + "\n")
    return label_file


def zeros_row(frame: int, width: int = 100) -> str:
    return ",".join([str(frame)] + ["0"] * width)


def test_cholect45_reads_a_minimal_tree(tmp_path: Path) -> None:
    cholect45_tree(tmp_path, [zeros_row(0)])
    video = read_cholect45(tmp_path)["VID01"]
    assert video.labels.shape == (1, 100) and video.source.paths[0].endswith("data/VID01/000000.png")
    assert read_class_names(tmp_path)[5] == "triplet_5"  # no dict/triplet.txt


@pytest.mark.parametrize("rows, message", [
    ([zeros_row(0, 99)], r"VID01.txt, line 1: expected 101 comma-separated columns .* found 100"),
    ([zeros_row(0), "1," + ",".join(["2"] + ["0"] * 99)], r"VID01.txt, line 2: column 2: label 2 is out of range 0-1"),
    ([zeros_row(0), zeros_row(1)],
     r"video VID01: 1 labelled frame of .*VID01.txt without an image file in .*VID01 \(first: 000001.png\)"),
    ([zeros_row(0), zeros_row(0)], r"VID01.txt, line 2: frame 0 is already labelled on line 1"),
])
def test_cholect45_rejects_malformed_labels(tmp_path: Path, rows: list[str], message: str) -> None:
    cholect45_tree(tmp_path, rows)
    with pytest.raises(DataError, match=message):
        read_cholect45(tmp_path)


def test_cholect45_writer_round_trips(tmp_path: Path) -> None:
    labels = np.zeros((2, 100), np.uint8)
    labels[1, [17, 60]] = 1
    write_cholect45_labels(tmp_path, "VID07", [0, 1], labels)
    for frame in (0, 1):
        (tmp_path / "data" / "VID07").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "data" / "VID07" / f"{frame:06d}.png")
    assert np.array_equal(read_cholect45(tmp_path)["VID07"].labels, labels)
    assert read_class_names(tmp_path)[60] == "hook,dissect,gallbladder"


def cholec80_tree(root: Path, lines: list[str]) -> Path:
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "video01.mp4").write_bytes(b"")
    annotation = root / "phase_annotations" / "video01-phase.txt"
    annotation.parent.mkdir()
    annotation.write_text("\n".join(lines) + "\n")
    return annotation


def test_cholec80_samples_every_25th_annotated_frame(tmp_path: Path) -> None:
    annotation = cholec80_tree(tmp_path, ["x"])
    write_phase_annotation(annotation, [0] * 25 + [1] * 25 + [3] * 10)
    video = read_cholec80(tmp_path)["video01"]
    assert video.labels.tolist() == [0, 1, 3] and video.source.sample_fps == 1.0
    assert read_cholec80(tmp_path, sample_fps=5.0)["video01"].labels.tolist() == [0] * 5 + [1] * 5 + [3] * 2


def test_cholec80_rejects_an_unknown_phase(tmp_path: Path) -> None:
    cholec80_tree(tmp_path, ["Frame\tPhase", "0\tPreparation", "1\tCoffeeBreak"])
    with pytest.raises(DataError, match=r"video01-phase.txt, line 3: unknown phase 'CoffeeBreak'; known .*Preparation"):
        read_cholec80(tmp_path)


def test_cholec80_rejects_a_bad_header(tmp_path: Path) -> None:
    cholec80_tree(tmp_path, ["0\tPreparation"])
    with pytest.raises(DataError, match=r"video01-phase.txt, line 1: expected the header"):
        read_cholec80(tmp_path)


def test_phase_annotator_noise_relabels_whole_seconds_as_other_phases() -> None:
    true = np.repeat(np.arange(2000) % len(PHASES), demo.ANNOTATION_FPS)
    annotated = true.copy()
    demo._phase_annotator_noise(np.random.default_rng(0), annotated)
    per_second = annotated.reshape(-1, demo.ANNOTATION_FPS)
    assert (per_second == per_second[:, :1]).all()  # one label per second: per sampled frame at 1 fps
    changed = per_second[:, 0] != true[::demo.ANNOTATION_FPS]
    assert abs(changed.mean() - demo._PHASE_ERROR_RATE) < 0.03
    assert set(np.unique(per_second[changed, 0] - true[::demo.ANNOTATION_FPS][changed]) % len(PHASES)) == set(range(1, 7))
