"""Images/s of training with our loader against the same training steps fed a batch already on the device.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/train_step.py [--backbone swin-b] [--size 224] [--batch 64]
[--steps 30] [--device auto|cuda|cpu] [--precision auto|bf16|fp16|fp32] [--repeats 2]``.

What is compared, the same model, optimizer and number of steps on both sides (random initialisation, 100
multi-label outputs, as CholecT45's triplets):

- ours: ``harness.train.fit.train`` for one epoch of ``--steps`` batches over synthetic frames in per-video
  memmapped ``.npy`` files: gather on a background thread into pinned memory, non-blocking copy, batched
  augmentation and normalisation on the device (:class:`harness.data.augment.ModelInputs`), autocast in
  ``--precision`` (with fp16's loss scaler), channels_last and the deterministic kernels on CUDA;
- synthetic: a minimal loop (Adam, then per step forward, BCE loss, backward, step) with the same precision,
  loss scaler, memory format and kernels, fed one normalised batch made on the device before the clock starts.

Both are warmed up on throwaway copies of the model, then timed ``--repeats`` times, interleaved, from the
same initial weights, copied to the device (channels_last) before each clock starts, so that the two
clocks time the same work but for the input pipeline; CUDA is synchronised before each clock stops. The
figure is the ratio of the best runs' images/s: 1.0x means the input pipeline costs the GPU nothing. The
defaults are the issue's GPU figure (Swin-B at 224, batch 64); ``--backbone tiny --size 48 --device cpu``
is a smoke run in seconds.
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
from stored_frames import memmapped_videos, per_run

from harness.config import FitSettings
from harness.data.augment import to_model_input
from harness.data.loader import FrameSet
from harness.hooks.registry import get_registry
from harness.train.fit import Precision, deterministic_cuda, pick_device, resolve_precision, task_loss, train
from harness.train.models import build_backbone, resolve_backbone

OUTPUTS, VIDEOS, SEED = 100, 8, 0


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` as ``train`` lays it out on ``device`` (which then copies nothing)."""
    return model.to(device).to(memory_format=torch.channels_last)


def synthetic_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, settings: FitSettings,
                    precision: Precision) -> float:
    """Seconds for ``steps`` training steps of ``model``, already on the device, on the batch ``(x, y)`` there."""
    device = x.device
    model.train()
    synchronise(device)
    start = time.perf_counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scaler = precision.grad_scaler(device)
    for _ in range(steps):
        with precision.autocast(device):
            loss = task_loss(model(x), y, "multilabel")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    synchronise(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="swin-b", help="a backbone name or alias (default: swin-b)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed run")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    parser.add_argument("--precision", default="auto", help="auto (default), bf16, fp16 or fp32; float32 on the CPU")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each, interleaved")
    args = parser.parse_args()
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    deterministic_cuda(device)
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
        train(replace(backbone, model=on_device(copy.deepcopy(initial), device)), FrameSet([frames[:warm]]),
              targets[:warm], "multilabel", settings, SEED, device, precision=args.precision)
        synthetic_steps(on_device(copy.deepcopy(initial), device), x, y, 3, settings, precision)

        ours, synthetic = [], []
        for _ in range(args.repeats):
            fresh = replace(backbone, model=on_device(copy.deepcopy(initial), device))
            synchronise(device)
            start = time.perf_counter()
            train(fresh, frame_set, targets, "multilabel", settings, SEED, device, precision=args.precision)
            synchronise(device)
            ours.append(n / (time.perf_counter() - start))
            model = on_device(copy.deepcopy(initial), device)
            synthetic.append(n / synthetic_steps(model, x, y, args.steps, settings, precision))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.backbone} at {args.size}x{args.size}, batch {args.batch}, {args.steps} steps, {precision.name}, "
          f"{name}")
    print(f"images/s per run: ours {per_run(ours, 1)}; synthetic {per_run(synthetic, 1)}")
    print(f"train step: ours {max(ours):.1f} images/s, synthetic tensors {max(synthetic):.1f} images/s (best runs), "
          f"ratio {max(ours) / max(synthetic):.2f}x")


if __name__ == "__main__":
    main()
