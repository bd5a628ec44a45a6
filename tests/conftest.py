"""Shared fixtures. Tests never reach the network and never write outside their temporary directories."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own SDBENCH_HOME, so demo data is generated once per session, never in ~."""
    monkeypatch.setenv("SDBENCH_HOME", str(tmp_path_factory.getbasetemp() / "sdbench-home"))


@pytest.fixture(scope="session")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``config_file(text)``: a run config holding ``text``, in a directory of its own."""

    def write(text: str) -> Path:
        path = tmp_path_factory.mktemp("config") / "plan.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Callable[[type], Path]:
    """``synthesized(DatasetClass)``: the root of that dataset's look-alike, synthesized once per session."""
    roots: dict[type, Path] = {}

    def make(dataset_class: type) -> Path:
        if dataset_class not in roots:
            roots[dataset_class] = tmp_path_factory.mktemp(dataset_class.__name__.lower())
            dataset_class.synthesize(roots[dataset_class])
        return roots[dataset_class]

    return make


@pytest.fixture(scope="session")
def encode_video() -> Callable[..., object]:
    """``encode_video(path, frames, labelled)``: uint8 (H, W, 3) ``frames`` written as H.264 at 25 fps; returns
    the ``VideoFrames`` of ``labelled`` frames sampled at 1 fps."""
    import av

    from harness.data.dataset import VideoFileFrames, VideoFrames

    def make(path: Path, frames: Iterable[np.ndarray], labelled: int) -> VideoFrames:
        frames = iter(frames)
        first = next(frames)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            stream.height, stream.width = first.shape[:2]
            for pixels in itertools.chain([first], frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            container.mux(stream.encode())
        return VideoFrames(path.stem, np.arange(labelled), np.zeros(labelled, np.int64),
                           VideoFileFrames(str(path), 1.0))

    return make


@pytest.fixture(scope="session")
def random_video(encode_video: Callable[..., object]) -> Callable[..., object]:
    """``random_video(path, seconds, size=48, seed=0)``: random pixels (so that most of the file is frame data),
    square ``size``, every second labelled."""

    def make(path: Path, seconds: int, size: int = 48, seed: int = 0) -> object:
        rng = np.random.default_rng(seed)
        frames = (rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(25 * seconds))
        return encode_video(path, frames, seconds)

    return make


HistoryFactory = Callable[..., "object"]


@pytest.fixture
def make_history(tmp_path: Path) -> HistoryFactory:
    """Write a hand-made teacher history and return it opened.

    ``confidence[e]`` is the probability the teacher gives to every true label after epoch e+1 (and
    ``1 - confidence`` to every other class), so the window rule sees exactly these confidences.
    """
    from harness.train.history import EpochRecord, HistoryWriter, TeacherHistory

    def make(seed: int, confidence: Sequence[float], val: Sequence[float], labels: np.ndarray | None = None,
             task: str = "multilabel") -> TeacherHistory:
        if labels is None:
            labels = np.array([[1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=np.uint8)
        directory = tmp_path / f"history-{seed}"
        writer = HistoryWriter(directory, seed, task, "mAP", labels, labels)
        for epoch, (c, v) in enumerate(zip(confidence, val), start=1):
            if task == "multilabel":
                probs = np.where(labels == 1, c, 1 - c).astype(np.float32)
            else:
                num_classes = int(labels.max()) + 1
                probs = np.full((len(labels), num_classes), (1 - c) / (num_classes - 1), dtype=np.float32)
                probs[np.arange(len(labels)), labels] = c
            writer.add_epoch(EpochRecord(epoch, 1.0 / epoch, {"mAP": v}), probs, probs)
        return TeacherHistory(directory)

    return make
