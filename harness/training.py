"""One fit loop for teachers and students, on CUDA or CPU with the same code.

Multi-label tasks train with BCE-with-logits and multi-class tasks with cross-entropy; both accept hard or
soft targets. Adam with cosine warm restarts stepped per epoch (the reference recipe); bf16 autocast and
channels_last on CUDA. Every random choice derives from the run's seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.checkpoint import load_training_state, save_training_state
from harness.data.augment import ModelInputs
from harness.data.loader import FrameSet, iterate_batches
from harness.config import FitSettings
from harness.faults import kill_point
from harness.models import Backbone


EpochCallback = Callable[[int, float, nn.Module], None]
"""``on_epoch(epoch, mean_train_loss, model)`` after each epoch (1-based); the model is in eval mode."""


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        from harness.errors import ConfigError

        raise ConfigError(f"device '{requested}' was requested but CUDA is not available here")
    return device


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def task_loss(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    """BCE-with-logits (multi-label) or cross-entropy (multi-class, class indices or probabilities)."""
    logits = logits.float()
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    return F.cross_entropy(logits, targets if targets.dtype == torch.int64 else targets.float())


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    logits = logits.float()
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def train(backbone: Backbone, frames: FrameSet, targets: np.ndarray, task: str, settings: FitSettings,
          seed: int, device: torch.device, on_epoch: EpochCallback | None = None,
          on_batch: Callable[[int], None] | None = None, checkpoint: Path | None = None) -> nn.Module:
    """Train ``backbone.model`` in place on ``frames`` against ``targets`` for ``settings.epochs`` epochs.

    With ``checkpoint``, the training state is saved there after every epoch (after ``on_epoch``), and a
    state found there at the start is resumed: epochs already finished are not trained again.
    """
    model = backbone.model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=settings.epochs + 1, eta_min=settings.eta_min)
    model_inputs = ModelInputs(backbone.mean, backbone.std)
    finished = 0
    if checkpoint is not None and checkpoint.is_file():
        finished = load_training_state(checkpoint, model, optimizer, scheduler)
    for epoch in range(finished + 1, settings.epochs + 1):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(frames), generator=generator).numpy()
        model.train()
        total, count = torch.zeros((), device=device), 0
        first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        for batch, (x, y) in enumerate(iterate_batches(frames, targets, settings.batch_size, device, order), 1):
            inputs = model_inputs(x, generator if settings.augment else None)
            with _autocast(device):
                loss = task_loss(model(inputs), y, task)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), batch, first_bad)
            total += loss.detach() * len(x)
            count += len(x)
            if on_batch is not None:
                on_batch(len(x))
            kill_point("batch")
        _check_finite_loss(int(first_bad), epoch, settings)
        scheduler.step()
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, float(total) / max(count, 1), model)
        if checkpoint is not None:
            save_training_state(checkpoint, epoch, model, optimizer, scheduler)
    model.eval()
    return model


def _check_finite_loss(first_bad_batch: int, epoch: int, settings: FitSettings) -> None:
    """Stop a diverged fit. The first non-finite batch is tracked on the device and read once per epoch, so
    a GPU step never waits for the host."""
    if first_bad_batch >= 0:
        from harness.errors import DivergedError

        raise DivergedError(f"the training loss is not finite at epoch {epoch}, batch {first_bad_batch} "
                            f"(lr {settings.lr:g}, batch size {settings.batch_size}): the model diverged; "
                            "lower the learning rate")


@torch.no_grad()
def predict(model: nn.Module, backbone: Backbone, frames: FrameSet, task: str, device: torch.device,
            batch_size: int = 128) -> np.ndarray:
    """Eval-mode probabilities (sigmoid or softmax), float32 (N, C), plain resize and normalise only."""
    model.eval()
    model_inputs = ModelInputs(backbone.mean, backbone.std)
    outputs = []
    for x, _ in iterate_batches(frames, None, batch_size, device):
        with _autocast(device):
            logits = model(model_inputs(x))
        outputs.append(probabilities(logits, task).cpu())
    probs = torch.cat(outputs).numpy().astype(np.float32)
    if not np.isfinite(probs).all():
        from harness.errors import DivergedError

        rows = np.flatnonzero(~np.isfinite(probs).all(axis=1))
        raise DivergedError(f"the model's probabilities are not finite on {len(rows)} of {len(probs)} frames "
                            f"(first: frame {rows[0]}): the model diverged; lower the learning rate")
    return probs


def seed_everything(seed: int) -> None:
    """Seed the global generators used by model initialisation."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
