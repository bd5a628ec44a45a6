"""FrameStore: builds once, reads back memory-mapped, writes atomically, checks frame counts."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from harness.data.dataset import ImageFrames, VideoFileFrames, VideoFrames
from harness.data.frames import FrameStore
from harness.errors import DataError

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def image_video(folder: Path, name: str = "v1") -> VideoFrames:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(COLOURS):
        path = folder / f"{i:06d}.png"
        Image.new("RGB", (30, 20), colour).save(path)
        paths.append(str(path))
    return VideoFrames(name, np.arange(len(paths)), np.zeros((len(paths), 3), np.uint8), ImageFrames(tuple(paths)))


def file_video(path: Path, seconds: int, labelled: int) -> VideoFrames:
    """A 25-fps video of ``seconds`` seconds whose grey level is 10 * (the second), ``labelled`` frames at 1 fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width = stream.height = 32
        for i in range(25 * seconds):
            grey = np.full((32, 32, 3), 10 * (i // 25), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")))
        container.mux(stream.encode())
    return VideoFrames(path.stem, np.arange(labelled), np.zeros(labelled, np.int64), VideoFileFrames(str(path), 1.0))


def test_builds_resized_read_only_frames(tmp_path: Path) -> None:
    video = image_video(tmp_path / "images")
    frames = FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)
    assert frames.shape == (5, 16, 16, 3) and frames.dtype == np.uint8
    assert isinstance(frames, np.memmap) and not frames.flags.writeable
    assert np.array_equal(frames[:, 8, 8], np.array(COLOURS, np.uint8))
    assert (tmp_path / "store" / "frames" / "ds" / "fp1" / "16" / "v1.npy").exists()


def test_second_call_reads_the_store_not_the_images(tmp_path: Path) -> None:
    video = image_video(tmp_path / "images")
    store = FrameStore(tmp_path / "store")
    first = np.array(store.frames("ds", "fp1", video, 16))
    for path in video.source.paths:
        Path(path).unlink()
    assert np.array_equal(store.frames("ds", "fp1", video, 16), first)
    assert not list((tmp_path / "store").rglob("*.tmp"))


def test_missing_image_names_the_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    video = image_video(tmp_path / "images")
    Path(video.source.paths[2]).unlink()
    with pytest.raises(DataError, match="000002.png"):
        FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]


def test_video_with_fewer_frames_than_labels_names_both_counts(tmp_path: Path) -> None:
    video = file_video(tmp_path / "short.mp4", seconds=3, labelled=5)
    with pytest.raises(DataError, match=r"short: 5 frames are labelled but only 3"):
        FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)


def test_video_with_more_frames_than_labels_keeps_the_first(tmp_path: Path) -> None:
    video = file_video(tmp_path / "long.mp4", seconds=4, labelled=2)
    frames = FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)
    assert frames.shape == (2, 16, 16, 3)
    assert abs(int(frames[1].mean()) - 10) <= 2


def test_build_materialises_every_video_and_reports_progress(tmp_path: Path) -> None:
    videos = [image_video(tmp_path / "a", "a"), image_video(tmp_path / "b", "b")]
    store = FrameStore(tmp_path / "store")
    messages: list[str] = []
    store.build("ds", "fp1", videos, 8, progress=messages.append)
    assert len(messages) == 2 and "a" in messages[0] and "b" in messages[1]
    assert sorted(p.name for p in store.path("ds", "fp1", "a", 8).parent.iterdir()) == ["a.npy", "b.npy"]
