"""FrameStore: builds once, reads back memory-mapped, writes atomically and streaming, checks frame counts and
video names, builds in parallel on the CPUs it may use, one process per video, and refuses decompression bombs."""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL
import pytest
from PIL import Image

from harness.data import frames as frames_module
from harness.data.dataset import ImageFrames, VideoFrames
from harness.data.frames import FrameBuildError, FrameStore, frame_pipeline_id
from harness.errors import DataError, SdbenchError
from harness.runs.gc import _ATOMIC_TEMP, STALE_TEMP_S, find_frame_store_garbage
from harness.system import cpus
from harness.system.locks import held

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
    assert (tmp_path / "store" / "frames" / "ds" / "fp1" / frame_pipeline_id() / "16" / "v1.npy").exists()


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
    store = FrameStore(tmp_path / "store")
    with pytest.raises(DataError, match="000002.png"):
        store.frames("ds", "fp1", video, 16)
    assert stored_files(store) == []


def test_video_with_fewer_frames_than_labels_names_both_counts(tmp_path: Path, encode_video) -> None:
    video = encode_video(tmp_path / "short.mp4", grey_steps(3), labelled=5)
    store = FrameStore(tmp_path / "store")
    with pytest.raises(DataError, match=r"short: 5 frames are labelled but only 3"):
        store.frames("ds", "fp1", video, 16)
    assert stored_files(store) == []  # the temporary file is removed


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
    """Every file of the store but its locks: frames and temporaries."""
    return sorted(p.name for p in (store.root / "frames").rglob("*")
                  if p.is_file() and not p.name.endswith((".lock", ".lock-probe")))


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
    real_frames = frames_module._source_frames
    calls = itertools.count(1)

    def second_video_fails_half_way(source, size, threads):  # noqa: ANN001, ANN202 - _source_frames' signature
        if next(calls) == 2:
            frames = real_frames(source, size, threads)
            yield next(frames)
            yield next(frames)
            raise OSError("disk full")
        yield from real_frames(source, size, threads)

    monkeypatch.setattr(frames_module, "_source_frames", second_video_fails_half_way)
    with pytest.raises(OSError, match="disk full"):
        store.load("ds", "fp1", videos, 8)
    kept = stored_files(store)
    assert len(kept) in (1, 2) and all(name.endswith(".npy") for name in kept)
    assert all(len(np.load(path)) == 5 for path in (store.root / "frames").rglob("*.npy"))

    decoded: list[str] = []
    monkeypatch.setattr(frames_module, "_source_frames", lambda source, size, threads: (
        decoded.append(Path(source.paths[0]).parent.name), real_frames(source, size, threads))[1])
    arrays = store.load("ds", "fp1", videos, 8)
    assert sorted(decoded) == sorted({"a", "b", "c"} - {name[0] for name in kept})
    assert [len(a) for a in arrays] == [5, 5, 5]
    assert stored_files(store) == ["a.npy", "b.npy", "c.npy"]


def test_a_video_is_decoded_frame_by_frame_into_a_hidden_temporary_file_renamed_when_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = image_video(tmp_path / "images")
    store = FrameStore(tmp_path / "store")
    target = store.path("ds", "fp1", "v1", 16)
    real_frames = frames_module._source_frames
    seen = []

    def watching(source, size, threads):  # noqa: ANN001, ANN202 - _source_frames' signature
        for i, frame in enumerate(real_frames(source, size, threads)):
            if i == 3:  # before the fourth frame is handed over, the first three are in the file already
                (temporary,) = [p for p in target.parent.iterdir() if p.suffix == ".tmp"]
                partial = np.load(temporary, mmap_mode="r")
                seen.append((temporary.name, partial.shape, np.array(partial[:3, 8, 8]), target.exists()))
            yield frame

    monkeypatch.setattr(frames_module, "_source_frames", watching)
    frames = store.frames("ds", "fp1", video, 16)
    ((name, shape, first_three, target_existed),) = seen
    assert _ATOMIC_TEMP.match(name) and name.startswith(".v1.npy.")
    assert shape == (5, 16, 16, 3) and not target_existed
    assert np.array_equal(first_three, np.array(COLOURS[:3], np.uint8))
    assert np.array_equal(frames[:, 8, 8], np.array(COLOURS, np.uint8))
    assert stored_files(store) == ["v1.npy"]


def test_two_builds_of_one_video_decode_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = image_video(tmp_path / "images")
    real_frames, real_held = frames_module._source_frames, frames_module.held
    entered, second_at_lock = itertools.count(), threading.Event()
    decodes: list[str] = []

    def noting_held(path, what, wait=True):  # noqa: ANN001, ANN202 - held's signature
        if next(entered) == 1:
            second_at_lock.set()
        return real_held(path, what, wait)

    def slow(source, size, threads):  # noqa: ANN001, ANN202 - _source_frames' signature
        decodes.append(threading.current_thread().name)
        assert second_at_lock.wait(10)
        time.sleep(0.2)  # the other build is now waiting for the lock
        yield from real_frames(source, size, threads)

    monkeypatch.setattr(frames_module, "held", noting_held)
    monkeypatch.setattr(frames_module, "_source_frames", slow)
    results: dict[str, np.ndarray] = {}

    def build(name: str) -> None:
        results[name] = np.array(FrameStore(tmp_path / "store").frames("ds", "fp1", video, 16))

    builders = [threading.Thread(target=build, args=(name,)) for name in ("first", "second")]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(30)
    assert len(decodes) == 1 and set(results) == {"first", "second"}
    assert np.array_equal(results["first"], results["second"])
    assert np.array_equal(results["first"][:, 8, 8], np.array(COLOURS, np.uint8))


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", ".", ".hidden", "a\0b", "", "/etc/passwd"])
def test_a_video_name_that_would_escape_the_store_is_refused_before_anything_is_written(
        name: str, tmp_path: Path) -> None:
    good = image_video(tmp_path / "images", "good")
    bad = dataclasses.replace(good, video=name)
    store = FrameStore(tmp_path / "store")
    with pytest.raises(DataError) as caught:
        store.load("mydata", "fp1", [good, bad], 16)
    assert "dataset mydata" in str(caught.value) and repr(name) in str(caught.value)
    assert not (tmp_path / "store").exists()


def test_the_frame_pipeline_puts_decoder_versions_into_store_paths_and_the_frames_job_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runs.plan import Plan

    store = FrameStore(tmp_path)
    cell = SimpleNamespace(data=SimpleNamespace(name="ds", fingerprint="fp1", version="1"))

    def path_and_key() -> tuple[Path, str]:
        plan = Plan(SimpleNamespace(image_size=16), registry=None)
        return store.path("ds", "fp1", "v1", 16), plan.frames_key(cell)

    before = path_and_key()
    assert before[0].parent.parent.name == frame_pipeline_id()
    assert re.fullmatch(r"pipeline1-av\d+\.\d+-pillow\d+\.\d+", frame_pipeline_id())
    monkeypatch.setattr(PIL, "__version__", PIL.__version__ + ".post1")  # a patch release: same pipeline
    assert path_and_key() == before
    changed = {}
    monkeypatch.setattr(PIL, "__version__", "99.1.0")
    changed["pillow"] = path_and_key()
    monkeypatch.undo()
    monkeypatch.setattr(frames_module, "FRAME_PIPELINE_VERSION", 2)
    changed["pipeline"] = path_and_key()
    assert all(path != before[0] and key != before[1] for path, key in changed.values())


def test_available_cpus_follow_the_affinity_then_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.delenv(cpus.SLURM_CPUS_ENV, raising=False)
    assert cpus.available_cpus() == 3
    for value, expected in (("2", 2), ("8", 3), ("0", 3), ("", 3), ("4(x2)", 3)):
        monkeypatch.setenv(cpus.SLURM_CPUS_ENV, value)
        assert cpus.available_cpus() == expected, value
    monkeypatch.delenv(cpus.SLURM_CPUS_ENV)
    monkeypatch.delattr(os, "sched_getaffinity")
    assert cpus.available_cpus() == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cpus.available_cpus() == 1


def test_a_build_decodes_at_most_one_video_per_available_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    videos = [image_video(tmp_path / name, name) for name in "abcde"]
    real_frames = frames_module._source_frames
    guard, running, peak, threads_given = threading.Lock(), [0], [0], []

    def tracked(source, size, threads):  # noqa: ANN001, ANN202 - _source_frames' signature
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            threads_given.append(threads)
        try:
            time.sleep(0.05)
            yield from real_frames(source, size, threads)
        finally:  # closed, not exhausted: the store asks for no more frames than are labelled
            with guard:
                running[0] -= 1

    monkeypatch.setattr(frames_module, "_source_frames", tracked)
    monkeypatch.setattr(frames_module, "available_cpus", lambda: 2)
    FrameStore(tmp_path / "store").load("ds", "fp1", videos, 8)
    assert 1 <= peak[0] <= 2 and threads_given == [1] * 5
    monkeypatch.setattr(frames_module, "available_cpus", lambda: 4)
    FrameStore(tmp_path / "store").frames("ds", "fp1", image_video(tmp_path / "f", "f"), 8)
    assert threads_given[-1] == 4  # a lone video's decoder gets every CPU


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width, height", [(12, 10), (30, 20)])  # PIL warns above the limit, raises above twice it
def test_a_decompression_bomb_image_is_refused_naming_the_file_and_its_pixels(
        width: int, height: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "bomb.png"
    Image.new("RGB", (width, height), (9, 9, 9)).save(path)
    video = VideoFrames("v", np.arange(1), np.zeros((1, 3), np.uint8), ImageFrames((str(path),)))
    store = FrameStore(tmp_path / "store")
    with pytest.raises(DataError, match=rf"frame image \S*bomb\.png is refused as a possible decompression bomb: "
                                        rf".*\b{width * height} pixels"):
        store.frames("ds", "fp1", video, 8)
    assert stored_files(store) == []


def test_gc_leaves_the_temporary_file_of_a_video_being_decoded_alone(tmp_path: Path) -> None:
    store = FrameStore(tmp_path)
    target = store.path("ds", "fp1", "v1", 16)
    target.parent.mkdir(parents=True)
    temporary = target.with_name(".v1.npy.k3x_9q2a.tmp")
    temporary.write_bytes(b"\x93NUMPY partial")
    old = time.time() - 2 * STALE_TEMP_S
    os.utime(temporary, (old, old))
    with held(frames_module.lock_path(target), "a build of v1"):
        assert find_frame_store_garbage(tmp_path) == []
    assert [item.path for item in find_frame_store_garbage(tmp_path)] == [temporary]


def test_a_full_disk_stops_the_build_with_a_clear_error_and_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    store = FrameStore(tmp_path / "store")
    with pytest.raises(SdbenchError, match=r"cannot write the frames of video v1 to \S*v1\.npy: No space left") as caught:
        store.frames("ds", "fp1", image_video(tmp_path / "images"), 16)
    assert not isinstance(caught.value, DataError)  # not one video's failure: the whole build stops
    assert stored_files(store) == []
