"""Frame-store builds: time and peak memory of ``FrameStore.load`` (each video decoded straight into a
memory-mapped file, under its lock) against the whole-video way in the same process, as the store built
before (the same videos decoded in parallel, each into one in-memory array, then ``np.save``).

Synthetic H.264 videos (PyAV, 25 fps) sampled at 1 fps; peak memory is the largest amount of memory
numpy and Python held at once during the build (``tracemalloc``, which numpy reports its arrays to). The two
sides alternate, ``--repeats`` times each, and the best times are compared.

    .venv/bin/python benchmarks/store_build.py [--videos 4] [--seconds 120] [--size 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import av
import numpy as np

from harness.data.dataset import VideoFileFrames, VideoFrames
from harness.data.frames import FrameStore
from harness.data.video import decode_sampled
from harness.system.cpus import available_cpus


def synthetic_video(path: Path, seconds: int, width: int = 480, height: int = 270) -> VideoFrames:
    """A moving gradient, ``seconds`` long at 25 fps, labelled at 1 fps."""
    rows, cols = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.height, stream.width = height, width
        for t in range(seconds * 25):
            pixels = np.stack([(rows + t) % 256, (cols + 2 * t) % 256, (rows + cols + 3 * t) % 256], axis=-1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode())
    return VideoFrames(path.stem, np.arange(seconds), np.zeros(seconds, np.int64), VideoFileFrames(str(path), 1.0))


def measured(build: Callable[[Path], None], folder: Path) -> tuple[float, int]:
    """Seconds and peak traced bytes of ``build(folder)``, in a fresh ``folder``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tracemalloc.start()
    started = time.perf_counter()
    build(folder)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = [synthetic_video(work / f"video{v}.mp4", args.seconds) for v in range(args.videos)]

        def ours(folder: Path) -> None:
            FrameStore(folder).load("bench", "fingerprint", videos, args.size)

        def whole_video(folder: Path) -> None:
            """As the store built before: the same videos in parallel, each held whole in memory."""
            workers = min(len(videos), available_cpus())

            def build(video: VideoFrames) -> None:
                threads = max(1, available_cpus() // workers)
                np.save(folder / f"{video.video}.npy",
                        decode_sampled(video.source.path, 1.0, args.size, len(video), threads))

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(build, videos))

        figures: dict[str, list[tuple[float, int]]] = {"ours": [], "whole": []}
        for _ in range(args.repeats):
            figures["ours"].append(measured(ours, work / "ours"))
            figures["whole"].append(measured(whole_video, work / "whole"))
    best = {side: min(s for s, _ in runs) for side, runs in figures.items()}
    peak = {side: max(p for _, p in runs) / 2**20 for side, runs in figures.items()}
    frames = args.videos * args.seconds
    print(f"store build: {args.videos} videos x {args.seconds} frames at {args.size} px "
          f"({frames * args.size * args.size * 3 / 2**20:.0f} MiB of frames), {available_cpus()} CPUs")
    print(f"time: ours {best['ours']:.2f} s, whole-video baseline {best['whole']:.2f} s (best runs), "
          f"ratio {best['whole'] / best['ours']:.2f}x")
    print(f"peak memory: ours {peak['ours']:.1f} MiB, whole-video baseline {peak['whole']:.1f} MiB, "
          f"ratio {peak['whole'] / max(peak['ours'], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
