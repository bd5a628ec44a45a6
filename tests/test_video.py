"""decode_sampled: sampling by timestamp (29.97 fps with B-frames, variable frame rate) and decode errors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from harness.data.video import decode_sampled
from harness.errors import DataError

BITS = 12
WIDTH, HEIGHT = 8 * BITS, 32


def number_image(number: int) -> np.ndarray:
    """A frame showing ``number`` in binary: one 8-pixel black or white stripe per bit."""
    bits = (number >> np.arange(BITS)) & 1
    return np.repeat(np.repeat(bits * 255, 8)[None, :, None], HEIGHT, axis=0).repeat(3, axis=2).astype(np.uint8)


def read_number(image: np.ndarray) -> int:
    bits = image.reshape(image.shape[0], BITS, -1, 3).mean(axis=(0, 2, 3)) > 128
    return int((bits << np.arange(BITS)).sum())


def encode(path: Path, times: list[Fraction], time_base: Fraction, options: dict[str, str] | None = None,
           extra: tuple[int, int] = (0, 0)) -> None:
    """Frame i shows the number i and has presentation time ``times[i]`` (seconds); ``extra`` (rows,
    columns) of edge pixels make the frame size odd (then in 4:4:4, which H.264 allows at odd sizes)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(1 / time_base), options=options or {})
        stream.width, stream.height = WIDTH + extra[1], HEIGHT + extra[0]
        stream.pix_fmt = "yuv444p" if any(extra) else "yuv420p"
        stream.codec_context.time_base = time_base
        for i, time in enumerate(times):
            pixels = np.pad(number_image(i), ((0, extra[0]), (0, extra[1]), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = int(time / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def ntsc_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 29.97 fps, x264 defaults (B-frames on)."""
    path = tmp_path_factory.mktemp("video") / "ntsc.mp4"
    time_base = Fraction(1001, 30000)
    encode(path, [i * time_base for i in range(300)], time_base, {"crf": "12"})
    return path


def test_encoded_video_has_b_frames(ntsc_video: Path) -> None:
    with av.open(str(ntsc_video)) as container:
        assert container.streams.video[0].codec_context.has_b_frames


def test_samples_the_frame_at_each_second(ntsc_video: Path) -> None:
    frames = decode_sampled(ntsc_video, 1.0, WIDTH)
    assert frames.shape == (10, WIDTH, WIDTH, 3) and frames.dtype == np.uint8
    shown = [read_number(frame) for frame in frames]
    for k, number in enumerate(shown):
        assert abs(number - round(k * 30000 / 1001)) <= 1, shown


def test_samples_at_two_fps_and_stops_at_expected_frames(ntsc_video: Path) -> None:
    frames = decode_sampled(ntsc_video, 2.0, WIDTH, expected_frames=5)
    assert [read_number(frame) for frame in frames] == [0, 15, 30, 45, 60]


def test_variable_frame_rate_repeats_a_frame_across_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    times = [Fraction(ms, 1000) for ms in (0, 400, 1000, 1300, 3600, 4200)]
    encode(path, times, Fraction(1, 1000))
    shown = [read_number(frame) for frame in decode_sampled(path, 1.0, WIDTH)]
    assert shown == [0, 2, 4, 4, 5]  # t=0 -> 0 s, t=1 -> 1.0 s, t=2 and t=3 -> 3.6 s, t=4 -> 4.2 s


def test_odd_frame_size_is_resized_to_the_square_target(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    time_base = Fraction(1, 25)
    encode(path, [i * time_base for i in range(75)], time_base, {"crf": "12"}, extra=(3, 1))
    with av.open(str(path)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (WIDTH + 1, HEIGHT + 3)
    frames = decode_sampled(path, 1.0, WIDTH)
    assert frames.shape == (3, WIDTH, WIDTH, 3)
    assert [read_number(frame) for frame in frames] == [0, 25, 50]


def test_truncated_video_raises_data_error_naming_the_file(ntsc_video: Path, tmp_path: Path) -> None:
    data = ntsc_video.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match="truncated.mp4"):
        decode_sampled(truncated, 1.0, 16)


def test_missing_video_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="absent.mp4"):
        decode_sampled(tmp_path / "absent.mp4", 1.0, 16)
