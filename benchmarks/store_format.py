"""Choose the frame store's format: random-batch reads from uint8 memory maps vs JPEG files decoded per batch.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/store_format.py [--quick]``.

What is compared, on the same 2,000 synthetic 224x224 RGB frames (500 with --quick; a smooth texture with
grain, like a downscaled endoscopic frame, so JPEG is neither trivial nor pure noise), random batches of
64, CPU, files in the page cache (the second of two passes is timed):

- memmap: the store as built, one uint8 ``.npy`` per video (10 videos), opened with ``mmap_mode="r"``;
  a batch is ``FrameSet.gather`` into one array (what the loader does);
- JPEG (quality 90, 4:2:0, one file per frame), read and decoded into one uint8 array per batch:
  with PIL on 1 thread, PIL on a pool of 2 threads (PIL releases the GIL while decoding), and
  ``torchvision.io.decode_jpeg`` on the CPU given the whole batch.

Printed: bytes on disk per frame and batches/s of each, with the ratio memmap / JPEG. GPU decoding (nvJPEG)
is not measured here: no GPU on the machine this was written on. Why: the store is read every epoch, so its
read speed bounds the loader; its size bounds how many datasets and resolutions fit on a disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchvision.io
from PIL import Image
from stored_frames import memmapped_videos

from harness.data.loader import FrameSet

SIZE, BATCH, VIDEOS, SEED, QUALITY = 224, 64, 10, 0, 90


def make_frames(n: int) -> np.ndarray:
    """A smooth colour field, different per frame, with +-6 grain."""
    rng = np.random.default_rng(SEED)
    coarse = torch.from_numpy(rng.random((n, 3, 7, 7), dtype=np.float32) * 255)
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    frames = smooth.permute(0, 2, 3, 1).numpy() + rng.integers(-6, 7, (n, SIZE, SIZE, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def batches_per_second(read: Callable[[np.ndarray], np.ndarray], order: np.ndarray) -> float:
    n_batches = len(order) // BATCH
    for _pass in range(2):  # the first pass warms the page cache
        start = time.perf_counter()
        for b in range(n_batches):
            out = read(order[b * BATCH:(b + 1) * BATCH])
        elapsed = time.perf_counter() - start
    assert out.shape == (BATCH, SIZE, SIZE, 3) and out.dtype == np.uint8
    return n_batches / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 frames instead of 2,000")
    args = parser.parse_args()
    n = 500 if args.quick else 2000
    torch.set_num_threads(1)
    frames = make_frames(n)
    order = np.random.default_rng(SEED).permutation(n)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        arrays = memmapped_videos(frames, VIDEOS, Path(tmp))
        npy_bytes = sum(Path(array.filename).stat().st_size for array in arrays)
        paths = [Path(tmp) / f"frame{i:05d}.jpg" for i in range(n)]
        for path, frame in zip(paths, frames):
            Image.fromarray(frame).save(path, quality=QUALITY)
        jpeg_bytes = sum(p.stat().st_size for p in paths)
        frame_set = FrameSet(arrays)

        def pil_one(i: int) -> np.ndarray:
            with Image.open(paths[i]) as image:
                return np.asarray(image.convert("RGB"))

        def torchvision_batch(rows: np.ndarray) -> np.ndarray:
            data = [torchvision.io.read_file(str(paths[i])) for i in rows]
            return torch.stack(torchvision.io.decode_jpeg(data)).permute(0, 2, 3, 1).numpy()

        speeds = {
            "memmap gather": batches_per_second(frame_set.gather, order),
            "JPEG, PIL, 1 thread": batches_per_second(lambda rows: np.stack([pil_one(i) for i in rows]), order),
            "JPEG, PIL, 2 threads": batches_per_second(lambda rows: np.stack(list(pool.map(pil_one, rows))), order),
            "JPEG, torchvision decode_jpeg": batches_per_second(torchvision_batch, order),
        }
        error = np.abs(pil_one(0).astype(np.int16) - frames[0]).mean()

    print(f"{n} frames of {SIZE}x{SIZE}, random batches of {BATCH}")
    print(f"on disk: memmap {npy_bytes / n / 1024:.1f} KB/frame, JPEG q{QUALITY} {jpeg_bytes / n / 1024:.1f} KB/frame "
          f"({npy_bytes / jpeg_bytes:.1f}x smaller, mean abs error {error:.2f} grey levels)")
    memmap = speeds["memmap gather"]
    for name, speed in speeds.items():
        ratio = "" if speed == memmap else f"  memmap is {memmap / speed:.1f}x faster"
        print(f"  {name:32s} {speed:8.1f} batches/s{ratio}")


if __name__ == "__main__":
    main()
