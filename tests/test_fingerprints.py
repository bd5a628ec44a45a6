"""Dataset fingerprints follow content: a copy elsewhere, with other modification times, keeps its fingerprint
(and so its frame store and every job); a changed label file, a renamed or resized frame or video does not."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest

from harness.cli import main
from harness.data.dataset import Dataset
from plugins.datasets.autolaparo import AutoLaparo
from plugins.datasets.cholec80 import Cholec80
from plugins.datasets.cholect45 import CholecT45
from plugins.datasets.cholect50 import CholecT50
from plugins.datasets.demo import DemoPhases, DemoTriplets
from plugins.datasets.esad import Esad

# Per plugin with a look-alike: one label file and one frame image or video file it reads.
FILES = {
    CholecT45: ("triplet/VID01.txt", "data/VID01/000000.png"),
    CholecT50: ("labels/VID01.json", "videos/VID01/000000.png"),
    Cholec80: ("phase_annotations/video01-phase.txt", "videos/video01.mp4"),
    AutoLaparo: ("labels/label_01.txt", "videos/01.mp4"),
    Esad: ("train/set1/RARP1_frame_5.txt", "train/set1/RARP1_frame_5.jpg"),
}
PLUGINS = pytest.mark.parametrize("plugin", list(FILES), ids=lambda plugin: plugin.__name__)


def fingerprint(plugin: type[Dataset], root: Path) -> str:
    return plugin({"root": str(root)}).fingerprint()


@pytest.fixture
def copy_of(synthesized: Callable[[type], Path], tmp_path: Path) -> Callable[[type], Path]:
    """``copy_of(plugin)``: a fresh copy of the plugin's look-alike, in a directory of this test."""
    return lambda plugin: Path(shutil.copytree(synthesized(plugin), tmp_path / "copy" / plugin.__name__))


@PLUGINS
def test_a_copy_elsewhere_with_new_modification_times_keeps_the_fingerprint(
        plugin: type[Dataset], synthesized: Callable[[type], Path], copy_of: Callable[[type], Path]) -> None:
    original, copy = synthesized(plugin), copy_of(plugin)
    assert fingerprint(plugin, copy) == fingerprint(plugin, original)
    later = time.time() + 3600
    for path in copy.rglob("*"):
        os.utime(path, (later, later))
    assert fingerprint(plugin, copy) == fingerprint(plugin, original)


@PLUGINS
def test_changed_label_bytes_change_the_fingerprint(plugin: type[Dataset], copy_of: Callable[[type], Path]) -> None:
    root = copy_of(plugin)
    before = fingerprint(plugin, root)
    label = root / FILES[plugin][0]
    size = label.stat().st_size
    label.write_bytes(label.read_bytes() + b"\n")
    assert fingerprint(plugin, root) != before
    label.write_bytes(label.read_bytes()[:size])
    assert fingerprint(plugin, root) == before


@PLUGINS
def test_a_renamed_or_resized_frame_or_video_changes_the_fingerprint(plugin: type[Dataset],
                                                                     copy_of: Callable[[type], Path]) -> None:
    root = copy_of(plugin)
    before = fingerprint(plugin, root)
    media = root / FILES[plugin][1]
    media.write_bytes(media.read_bytes() + b"\0")
    resized = fingerprint(plugin, root)
    media.rename(media.with_name("renamed" + media.suffix))
    renamed = fingerprint(plugin, root)
    assert len({before, resized, renamed}) == 3


@PLUGINS
def test_the_root_option_is_not_part_of_the_fingerprint_but_label_options_are(
        plugin: type[Dataset], synthesized: Callable[[type], Path]) -> None:
    root = synthesized(plugin)
    assert fingerprint(plugin, root) == plugin({"root": str(root) + os.sep}).fingerprint()
    changing = {CholecT45: {"targets": "all"}, CholecT50: {"targets": "all"}, Esad: {"unlabeled": "drop"}}
    if plugin in changing:
        assert plugin({"root": str(root), **changing[plugin]}).fingerprint() != fingerprint(plugin, root)


@pytest.mark.parametrize("plugin", [DemoTriplets, DemoPhases], ids=lambda plugin: plugin.__name__)
def test_demo_fingerprints_name_the_generator_not_where_it_writes(plugin: type[Dataset], tmp_path: Path) -> None:
    assert fingerprint(plugin, tmp_path / "a") == fingerprint(plugin, tmp_path / "b")


TINY_RUN = """
datasets: [esad]
strategies: [last]
seeds: [0]
image_size: 16
teacher: {{epochs: 1, batch_size: 16}}
student: {{epochs: 1, batch_size: 16}}
dataset_options:
  esad: {{root: {root}}}
"""


def test_a_run_on_a_copied_dataset_trains_nothing_again(synthesized: Callable[[type], Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SDBENCH_HOME", str(tmp_path / "home"))
    original = Path(shutil.copytree(synthesized(Esad), tmp_path / "data"))
    config, out = tmp_path / "run.yaml", tmp_path / "run"
    config.write_text(TINY_RUN.format(root=original))
    assert main(["run", "--config", str(config), "--out", str(out)]) == 0
    assert "trained 1 teacher(s) and 1 student(s)" in capsys.readouterr().err
    results = (out / "results.csv").read_bytes()

    copy = Path(shutil.copytree(original, tmp_path / "scratch" / "esad"))
    shutil.rmtree(original)
    config.write_text(TINY_RUN.format(root=copy))
    assert main(["run", "--config", str(config), "--out", str(out)]) == 0
    assert "trained 0 teacher(s) and 0 student(s)" in capsys.readouterr().err
    assert (out / "results.csv").read_bytes() == results
    assert len(list((tmp_path / "home" / "frames" / "esad").iterdir())) == 1  # one fingerprint, frames built once
