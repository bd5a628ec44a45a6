"""Time our 1-fps frame extraction (``decode_sampled``) against ffmpeg's own decoding ceiling.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/decode_speed.py [--quick]``.

What is compared: H.264 files made here with PyAV (libx264, crf 23, preset veryfast, 25 fps, ONE slice per
frame like real recordings: sliced threading flatters threaded decoding) at 854x480 and 1920x1080, ~60 s
each (15 s with --quick). ``decode_sampled(path, 1.0, 224)`` decodes the whole stream and converts one
frame per second; ``ffmpeg -threads 2 -i path -f null -`` decodes the whole stream and discards it, which
is the practical ceiling on 2 cores. Speed is source frames decoded per second (duration*fps/seconds),
best of 2 runs each. Why: extraction of every video runs once per dataset and is nearly all decode cost,
so the ratio says how much a faster decode path could still gain.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from harness.data.video import decode_sampled

FPS = 25
SIZES = [(854, 480), (1920, 1080)]
X264 = {"crf": "23", "preset": "veryfast", "x264-params": "slices=1:sliced-threads=0"}


def make_video(path: Path, width: int, height: int, seconds: int, seed: int = 0) -> float:
    """Write a synthetic clip (a textured scene panning, a moving blob, grain); return Mb/s."""
    rng = np.random.default_rng(seed)
    # Low-frequency texture, larger than the frame, so panning gives real motion for the encoder to code.
    coarse = rng.integers(0, 256, (height // 4 + 80, width // 4 + 80, 3), dtype=np.uint8)
    texture = np.kron(coarse, np.ones((4, 4, 1), dtype=np.uint8)).astype(np.int16)
    texture = ((texture + np.roll(texture, 2, 0) + np.roll(texture, 2, 1) + np.roll(texture, 2, (0, 1))) // 4)
    grain = [rng.integers(-10, 11, (height, width, 3), dtype=np.int16) for _ in range(11)]
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options=X264)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(seconds * FPS):
            t = i / FPS
            dy, dx = int(120 + 100 * np.sin(t / 3)), int(120 + 100 * np.cos(t / 4))
            img = texture[dy:dy + height, dx:dx + width].copy()
            # A bright moving "instrument" blob.
            cx, cy = width * (0.5 + 0.3 * np.sin(t)), height * (0.5 + 0.3 * np.cos(1.3 * t))
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < (height / 8) ** 2] = 220
            img += grain[i % len(grain)]
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.stat().st_size * 8 / seconds / 1e6


def slices_per_frame(path: Path) -> str:
    """Slice headers per frame, counted by ffmpeg's trace_headers bitstream filter ('?' without ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        return "?"
    log = subprocess.run(["ffmpeg", "-v", "trace", "-i", str(path), "-frames:v", "10", "-c", "copy",
                          "-bsf:v", "trace_headers", "-f", "null", "-"], capture_output=True, text=True).stderr
    return f"{log.count('Slice Header') / 10:g}"


def best_of(fn, runs: int = 2) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s clips instead of 60 s")
    args = parser.parse_args()
    seconds = 15 if args.quick else 60
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is not on PATH: skipping the ffmpeg comparison (install it, e.g. apt-get install ffmpeg)")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in SIZES:
            path = Path(tmp) / f"clip_{height}p.mp4"
            start = time.perf_counter()
            mbps = make_video(path, width, height, seconds)
            print(f"made {width}x{height} {seconds} s clip at {mbps:.1f} Mb/s, "
                  f"{slices_per_frame(path)} slice(s)/frame, in {time.perf_counter() - start:.0f} s")
            n_source = seconds * FPS
            kept = len(decode_sampled(path, 1.0, 224))
            assert kept == seconds, f"expected {seconds} sampled frames, got {kept}"
            ours = n_source / best_of(lambda: decode_sampled(path, 1.0, 224))
            if ffmpeg is None:
                print(f"decode {width}x{height}: ours {ours:.0f} fps, ffmpeg skipped (not installed)")
                continue
            cmd = [ffmpeg, "-v", "error", "-nostdin", "-threads", "2", "-i", str(path), "-f", "null", "-"]
            theirs = n_source / best_of(lambda: subprocess.run(cmd, check=True))
            print(f"decode {width}x{height}: ours {ours:.0f} fps, ffmpeg {theirs:.0f} fps, "
                  f"ratio {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
