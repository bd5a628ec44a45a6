"""Time our batch path (memmapped frames, batched augmentation) against a per-sample DataLoader pipeline.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/loader_speed.py [--quick] [--frames N] [--cores N] [--repeats N]
[--device cpu|cuda|auto]``.

What is compared, on the same 2,000 synthetic 224x224 RGB frames (500 with --quick, N with --frames), random
batches of 64 (full batches only), CPU, 2 cores (``--cores``: N torch threads for ours, N DataLoader workers
for the baseline):

- ours: the training loop's input path: frames in per-video ``.npy`` files opened once with
  ``mmap_mode="r"`` -> ``iterate_batches`` (gathers the next batch on a background thread) ->
  ``ModelInputs`` with an augmentation generator (flip, shift-scale-rotate, colour jitter, normalise, all
  batched, into memory kept from batch to batch as in the training loop), in the main process with 2 torch
  threads; with ``--device cuda`` the batches are gathered into pinned memory, copied without blocking and
  augmented on the GPU, and CUDA is synchronised before the clock stops;
- baseline: the usual per-sample pipeline, a ``torch.utils.data.DataLoader`` with 2 worker processes, each
  sample a PNG decoded with PIL, then torchvision v2 RandomHorizontalFlip, RandomAffine(45, translate
  0.0625, scale 0.9-1.1, bilinear) and a small ColorJitter, each with probability 0.5 as in the reference
  (torchvision fills the corners instead of reflecting), then ToDtype and Normalize; workers are persistent and the timed
  epoch is the second one, so worker start-up is not counted (this favours the baseline); with
  ``--device cuda`` the DataLoader pins its batches and each is copied to the GPU without blocking, as a
  training loop would, so that both sides end with their batches on the GPU (ours copies uint8 frames, the
  baseline float32 ones: that difference is part of what is compared).

Both are timed over warm epochs (files in the page cache), ``--repeats`` of each, interleaved; the ratio of
the best epochs is the figure (as ``timeit`` takes the best run: noise only slows), with the median ratio of
paired epochs beside it. Why: the harness bets that keeping decoded
frames raw and augmenting whole batches removes the input pipeline from the training time on small CPUs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from stored_frames import memmapped_videos, per_run
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from harness.data.augment import ModelInputs
from harness.data.loader import FrameSet, iterate_batches
from harness.train.fit import pick_device
from harness.train.models import IMAGENET_MEAN, IMAGENET_STD

SIZE, BATCH, VIDEOS, SEED = 224, 64, 10, 0


class PngFrames(Dataset):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.transform = v2.Compose([
            v2.ToImage(),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.RandomAffine(degrees=45, translate=(0.0625, 0.0625), scale=(0.9, 1.1),
                                            interpolation=v2.InterpolationMode.BILINEAR)]),
            v2.RandomApply([v2.ColorJitter(brightness=0.02, saturation=0.02, hue=0.03)]),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def make_frames(n: int) -> np.ndarray:
    """Random frames with some structure (blocky colour plus noise), so PNG is neither trivial nor pure noise."""
    rng = np.random.default_rng(SEED)
    coarse = rng.integers(0, 256, (n, SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
    frames = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2).astype(np.int16)
    frames += rng.integers(-12, 13, frames.shape, dtype=np.int16)
    return np.clip(frames, 0, 255).astype(np.uint8)


def time_ours(frame_set: FrameSet, n_batches: int, device: torch.device) -> float:
    generator = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(frame_set), generator=generator).numpy()
    order = order[:n_batches * BATCH]  # full batches only, as the baseline's drop_last
    model_inputs = ModelInputs(IMAGENET_MEAN, IMAGENET_STD)
    start = time.perf_counter()
    for x, _ in iterate_batches(frame_set, None, BATCH, device, order):
        out = model_inputs(x, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    assert out.shape == (BATCH, 3, SIZE, SIZE)
    return elapsed


def time_baseline(loader: DataLoader, n_batches: int, device: torch.device) -> float:
    start = time.perf_counter()
    count = 0
    for batch in loader:
        batch = batch.to(device, non_blocking=True)
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    assert count == n_batches and batch.shape == (BATCH, 3, SIZE, SIZE)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 frames instead of 2,000")
    parser.add_argument("--frames", type=int, help="this many frames instead (a smoke run: 128)")
    parser.add_argument("--cores", type=int, default=2, help="torch threads (ours) and DataLoader workers (baseline)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each, interleaved")
    parser.add_argument("--device", default="cpu",
                        help="where ours augments: cpu (default), cuda, or auto (CUDA when present)")
    args = parser.parse_args()
    device = pick_device(args.device)
    n = args.frames or (500 if args.quick else 2000)
    torch.set_num_threads(args.cores)
    frames = make_frames(n)
    n_batches = n // BATCH
    with tempfile.TemporaryDirectory() as tmp:
        frame_set = FrameSet(memmapped_videos(frames, VIDEOS, Path(tmp)))
        paths = []
        for i, frame in enumerate(frames):
            paths.append(Path(tmp) / f"frame{i:05d}.png")
            Image.fromarray(frame).save(paths[-1])
        png_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024

        loader = DataLoader(PngFrames(paths), batch_size=BATCH, shuffle=True, num_workers=args.cores, drop_last=True,
                            persistent_workers=True, pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(SEED))
        time_ours(frame_set, n_batches, device)  # warm-up: page cache, torch kernels
        time_baseline(loader, n_batches, device)  # warm-up: worker start-up, page cache
        ours, baseline = [], []
        for _ in range(args.repeats):  # interleaved, so that a noisy spell hits both sides
            ours.append(n_batches / time_ours(frame_set, n_batches, device))
            baseline.append(n_batches / time_baseline(loader, n_batches, device))
        del loader

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{n} frames of {SIZE}x{SIZE}, PNG {png_kb:.0f} KB/frame, {n_batches} batches of {BATCH}, {args.cores} cores, "
          f"{args.repeats} interleaved epochs each; ours augments on the {where}")
    print(f"batches/s per epoch: ours {per_run(ours)}; baseline {per_run(baseline)}")
    ratios = sorted(o / b for o, b in zip(ours, baseline))
    print(f"loader: ours {max(ours):.2f} batches/s, per-sample baseline {max(baseline):.2f} batches/s (best epochs), "
          f"ratio {max(ours) / max(baseline):.2f}x; median ratio of paired epochs {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
