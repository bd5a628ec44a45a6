"""FrameStore: builds once, reads back memory-mapped, writes atomically, checks frame counts, builds in parallel."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import frames as frames_module
from harness.data.dataset import ImageFrames, VideoFrames
from harness.data.frames import FrameBuildError, FrameStore
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


def grey_steps(seconds: int) -> list[np.ndarray]:
    """25 frames a second of 32 x 32 pixels whose grey level is 10 * (the second)."""
    return [np.full((32, 32, 3), 10 * (i // 25), np.uint8) for i in range(25 * seconds)]


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


def test_video_with_fewer_frames_than_labels_names_both_counts(tmp_path: Path, encode_video) -> None:
    video = encode_video(tmp_path / "short.mp4", grey_steps(3), labelled=5)
    with pytest.raises(DataError, match=r"short: 5 frames are labelled but only 3"):
        FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)


def test_video_with_more_frames_than_labels_keeps_the_first(tmp_path: Path, encode_video) -> None:
    video = encode_video(tmp_path / "long.mp4", grey_steps(4), labelled=2)
    frames = FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16)
    assert frames.shape == (2, 16, 16, 3)
    assert abs(int(frames[1].mean()) - 10) <= 2


def damage_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + len(data) // 8] = bytes(len(data) // 8)
    path.write_bytes(bytes(data))


def stored_files(store: FrameStore) -> list[str]:
    return sorted(p.name for p in (store.root / "frames").rglob("*") if p.is_file())


def test_load_returns_every_video_in_order_and_reports_progress(tmp_path: Path, encode_video) -> None:
    videos = [image_video(tmp_path / "a", "a"), encode_video(tmp_path / "b.mp4", grey_steps(3), 3),
              image_video(tmp_path / "c", "c")]
    store = FrameStore(tmp_path / "store")
    store.frames("ds", "fp1", videos[2], 8)
    advanced: list[int] = []
    arrays = store.load("ds", "fp1", videos, 8, progress=advanced.append)
    assert [len(a) for a in arrays] == [5, 3, 5] and all(isinstance(a, np.memmap) for a in arrays)
    assert np.array_equal(arrays[0][:, 4, 4], np.array(COLOURS, np.uint8))
    assert sum(advanced) == 3 and advanced[0] == 1  # the stored video counts at once
    assert stored_files(store) == ["a.npy", "b.npy", "c.npy"]


def test_corrupted_and_truncated_videos_are_named_with_the_time_reached_and_the_rest_builds(tmp_path: Path,
                                                                                          random_video) -> None:
    good = [random_video(tmp_path / "good1.mp4", 4, size=64), random_video(tmp_path / "good2.mp4", 4, size=64)]
    corrupted = random_video(tmp_path / "corrupted.mp4", 8, size=64)
    damage_middle(tmp_path / "corrupted.mp4")
    truncated = random_video(tmp_path / "truncated.mkv", 8, size=64)
    data = (tmp_path / "truncated.mkv").read_bytes()
    (tmp_path / "truncated.mkv").write_bytes(data[:len(data) // 2])
    store = FrameStore(tmp_path / "store")

    with pytest.raises(FrameBuildError) as caught:
        store.load("ds", "fp1", [good[0], corrupted, truncated, good[1]], 16)

    assert set(caught.value.failures) == {"corrupted", "truncated"}
    assert re.search(r"corrupted\.mp4: cannot decode video after [1-7]\.\d\d s", caught.value.failures["corrupted"])
    assert re.search(r"8 frames are labelled but only [1-7] could be read from .*truncated\.mkv "
                     r"\(its frames end before [1-7]\.00 s\)", caught.value.failures["truncated"])
    message = str(caught.value)
    assert "2 of 4 videos could not be decoded (2 in the frame store)" in message
    assert "  corrupted: " in message and "  truncated: " in message
    assert stored_files(store) == ["good1.npy", "good2.npy"]


def test_interrupted_build_keeps_finished_videos_never_leaves_a_partial_file_and_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    videos = [image_video(tmp_path / name, name) for name in ("a", "b", "c")]
    store = FrameStore(tmp_path / "store")
    real_save = np.save
    saves = itertools.count(1)

    def second_save_crashes_half_way(handle, array, allow_pickle):  # noqa: ANN001 - np.save's signature
        if next(saves) == 2:
            handle.write(b"\x93NUMPY partial")
            raise OSError("disk full")
        real_save(handle, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", second_save_crashes_half_way)
    with pytest.raises(OSError, match="disk full"):
        store.load("ds", "fp1", videos, 8)
    kept = stored_files(store)
    assert len(kept) in (1, 2) and all(name.endswith(".npy") for name in kept)
    assert all(len(np.load(path)) == 5 for path in (store.root / "frames").rglob("*.npy"))

    monkeypatch.setattr(np, "save", real_save)
    decoded: list[str] = []
    real_decode = frames_module._decode
    monkeypatch.setattr(frames_module, "_decode", lambda video, size, threads: (
        decoded.append(video.video), real_decode(video, size, threads))[1])
    arrays = store.load("ds", "fp1", videos, 8)
    assert sorted(decoded) == sorted({"a", "b", "c"} - {name[0] for name in kept})
    assert [len(a) for a in arrays] == [5, 5, 5]
    assert stored_files(store) == ["a.npy", "b.npy", "c.npy"]
