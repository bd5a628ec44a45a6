"""Time one real training epoch against the same training steps fed pre-made tensors.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/epoch_overhead.py [--quick] [--repeats N]``.

What is compared: the ``tiny`` backbone at 48x48 on 1,000 synthetic frames (256 with --quick), 7 multi-label
classes, CPU with 2 torch threads.

- real loader: ``harness.train.fit.train`` with ``FitSettings(epochs=1, batch_size=32, augment=True)`` on a
  ``FrameSet`` of per-video memmapped ``.npy`` files (gather, batched augmentation, normalise, step);
- pre-made tensors: a copy of the same initial model and a fresh Adam with the same settings, fed
  normalised channels_last float batches made before the clock starts, in a minimal loop (forward, BCE
  loss, backward, Adam step) with the same batch count and sizes.

Both paths are warmed up first on throwaway copies of the model, then timed over ``--repeats`` epochs each,
interleaved, from the same initial weights; the ratio of the best epochs is the figure. Why: the ratio is the input pipeline's
share of an epoch; near 1.0x means the loader is not the bottleneck of CPU training at the demo size.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from stored_frames import memmapped_videos, per_run

from harness.config import FitSettings
from harness.data.augment import ModelInputs, to_model_input
from harness.data.loader import FrameSet, iterate_batches
from harness.hooks.registry import get_registry
from harness.train.fit import train
from harness.train.models import build_backbone, resolve_backbone

SIZE, CLASSES, VIDEOS, SEED = 48, 7, 5, 0
SETTINGS = FitSettings(epochs=1, batch_size=32, augment=True)


def premade_epoch(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=SETTINGS.lr, weight_decay=SETTINGS.weight_decay)
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 frames instead of 1,000")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each, interleaved")
    args = parser.parse_args()
    n = 256 if args.quick else 1000
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    frames = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    targets = (rng.random((n, CLASSES)) < 0.3).astype(np.float32)
    reg = get_registry()
    backbone = build_backbone(reg, resolve_backbone(reg, "tiny"), CLASSES, {})
    initial = copy.deepcopy(backbone.model)
    cpu = torch.device("cpu")

    with tempfile.TemporaryDirectory() as tmp:
        frame_set = FrameSet(memmapped_videos(frames, VIDEOS, Path(tmp)))

        # The same batch sizes the real loader yields for this seed's order (it drops a final batch of one).
        order = torch.randperm(n, generator=torch.Generator().manual_seed(SEED * 1_000_003 + 1)).numpy()
        batches = [(to_model_input(x, backbone.mean, backbone.std), y)
                   for x, y in iterate_batches(FrameSet([frames]), targets, SETTINGS.batch_size, cpu, order)]

        # Warm-up of both paths on throwaway copies.
        warm = replace(backbone, model=copy.deepcopy(initial))
        train(warm, FrameSet([frames[:128]]), targets[:128], "multilabel", SETTINGS, SEED, cpu)
        premade_epoch(copy.deepcopy(initial), batches[:4])

        real, premade = [], []
        for _ in range(args.repeats):  # interleaved, so that a noisy spell hits both sides
            fresh = replace(backbone, model=copy.deepcopy(initial))
            start = time.perf_counter()
            train(fresh, frame_set, targets, "multilabel", SETTINGS, SEED, cpu)
            real.append(time.perf_counter() - start)
            premade.append(premade_epoch(copy.deepcopy(initial), batches))

        # Input pipeline alone (gather + augment + normalise), for the report.
        generator = torch.Generator().manual_seed(SEED)
        model_inputs = ModelInputs(backbone.mean, backbone.std)
        start = time.perf_counter()
        for x, _ in iterate_batches(frame_set, targets, SETTINGS.batch_size, cpu, order):
            model_inputs(x, generator)
        pipeline = time.perf_counter() - start

    print(f"{n} frames of {SIZE}x{SIZE}, {len(batches)} batches of up to {SETTINGS.batch_size}; "
          f"input pipeline alone {pipeline:.2f} s")
    print(f"seconds per epoch: real loader {per_run(real)}; pre-made tensors {per_run(premade)}")
    print(f"epoch overhead: real loader {min(real):.2f} s, pre-made tensors {min(premade):.2f} s (best epochs), "
          f"ratio {min(real) / min(premade):.2f}x")


if __name__ == "__main__":
    main()
