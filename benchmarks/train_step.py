"""Images/s of training with our loader against the same training steps fed a batch already on the device.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/train_step.py [--backbone swin-b] [--size 224] [--batch 64]
[--steps 30] [--device auto|cuda|cpu] [--repeats 2]``.

What is compared, the same model, optimizer and number of steps on both sides (random initialisation, 100
multi-label outputs, as CholecT45's triplets):

- ours: ``harness.training.train`` for one epoch of ``--steps`` batches over synthetic frames in per-video
  memmapped ``.npy`` files: gather on a background thread into pinned memory, non-blocking copy, batched
  augmentation and normalisation on the device (:class:`harness.data.augment.ModelInputs`), bf16 autocast and
  channels_last on CUDA;
- synthetic: a minimal loop (forward, BCE loss, backward, Adam step) with the same autocast and memory format,
  fed one normalised batch made on the device before the clock starts.

Both are warmed up on throwaway copies of the model, then timed ``--repeats`` times, interleaved, from the
same initial weights; CUDA is synchronised before each clock stops. The figure is the ratio of the best
runs' images/s: 1.0x means the input pipeline costs the GPU nothing. The defaults are the issue's GPU figure
(Swin-B at 224, batch 64); ``--backbone tiny --size 48 --device cpu`` is a smoke run in seconds.
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

from harness.config import FitSettings
from harness.data.augment import to_model_input
from harness.data.loader import FrameSet
from harness.models import build_backbone, resolve_backbone
from harness.plugins import get_registry
from harness.training import pick_device, task_loss, train
from stored_frames import memmapped_videos, per_run

OUTPUTS, VIDEOS, SEED = 100, 8, 0


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
                    settings: FitSettings) -> float:
    """Seconds for ``steps`` training steps on the device-resident batch ``(x, y)``."""
    device = x.device
    model = model.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = task_loss(model(x), y, "multilabel")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronise(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="swin-b", help="a backbone name or alias (default: swin-b)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed run")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each, interleaved")
    args = parser.parse_args()
    device = pick_device(args.device)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    n = args.steps * args.batch
    frames = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    targets = (rng.random((n, OUTPUTS)) < 0.05).astype(np.float32)
    registry = get_registry()
    backbone = build_backbone(registry, resolve_backbone(registry, args.backbone), OUTPUTS, {})
    initial = copy.deepcopy(backbone.model)
    settings = FitSettings(epochs=1, batch_size=args.batch, augment=True)

    with tempfile.TemporaryDirectory() as tmp:
        frame_set = FrameSet(memmapped_videos(frames, VIDEOS, Path(tmp)))
        batch = torch.from_numpy(frames[:args.batch]).to(device)
        x = to_model_input(batch, backbone.mean, backbone.std).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(targets[:args.batch]).to(device)

        warm = min(n, 3 * args.batch)
        train(replace(backbone, model=copy.deepcopy(initial)), FrameSet([frames[:warm]]), targets[:warm],
              "multilabel", settings, SEED, device)
        synthetic_steps(copy.deepcopy(initial), x, y, 3, settings)

        ours, synthetic = [], []
        for _ in range(args.repeats):
            fresh = replace(backbone, model=copy.deepcopy(initial))
            synchronise(device)
            start = time.perf_counter()
            train(fresh, frame_set, targets, "multilabel", settings, SEED, device)
            synchronise(device)
            ours.append(n / (time.perf_counter() - start))
            synthetic.append(n / synthetic_steps(copy.deepcopy(initial), x, y, args.steps, settings))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.backbone} at {args.size}x{args.size}, batch {args.batch}, {args.steps} steps, {name}")
    print(f"images/s per run: ours {per_run(ours, 1)}; synthetic {per_run(synthetic, 1)}")
    print(f"train step: ours {max(ours):.1f} images/s, synthetic tensors {max(synthetic):.1f} images/s (best runs), "
          f"ratio {max(ours) / max(synthetic):.2f}x")


if __name__ == "__main__":
    main()
