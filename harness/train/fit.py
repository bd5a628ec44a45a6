"""One fit loop for teachers and students, on CUDA or CPU with the same code.

Multi-label tasks train with BCE-with-logits and multi-class tasks with cross-entropy; both accept hard or
soft targets. Adam with cosine warm restarts stepped per epoch (the reference recipe); on CUDA, autocast in
the run's precision (:func:`resolve_precision`), channels_last and deterministic kernels
(:func:`deterministic_cuda`). Every random choice derives from the run's seed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import PRECISIONS, FitSettings
from harness.data.augment import ModelInputs
from harness.data.loader import FrameSet, iterate_batches
from harness.system.faults import kill_point
from harness.train.checkpoint import load_training_state, save_training_state
from harness.train.models import Backbone

EpochCallback = Callable[[int, float, nn.Module], None]
"""``on_epoch(epoch, mean_train_loss, model)`` after each epoch (1-based); the model is in eval mode."""


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        from harness.errors import ConfigError

        if not torch.cuda.is_available():
            raise ConfigError(f"device '{requested}' was requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device '{requested}' was requested but this process sees {torch.cuda.device_count()} "
                              f"GPU(s) (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return device


@dataclass(frozen=True)
class Precision:
    """What a fit and its predictions compute in on one device, as :func:`resolve_precision` decided."""

    name: str
    """bf16, fp16 or fp32."""
    dtype: torch.dtype | None
    """The autocast dtype; None: float32 throughout, no autocast."""

    @property
    def scaled(self) -> bool:
        """fp16 scales the loss (torch.amp.GradScaler): small gradients underflow its range otherwise. bf16
        has float32's range and needs no scaling. The scaler reads its overflow flag on the host at every
        step, so in fp16 a step waits for the GPU."""
        return self.dtype == torch.float16

    def autocast(self, device: torch.device) -> ContextManager:
        return contextlib.nullcontext() if self.dtype is None else torch.autocast(device.type, dtype=self.dtype)

    def grad_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        """A scaler for one fit: a pass-through (disabled) one unless this precision is scaled."""
        return torch.amp.GradScaler(device.type, enabled=self.scaled)


FP32 = Precision("fp32", None)
BF16 = Precision("bf16", torch.bfloat16)
FP16 = Precision("fp16", torch.float16)


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision that ``requested`` (auto, bf16, fp16 or fp32) means on ``device``.

    On CUDA, ``auto`` is bf16 where the GPU computes it natively (compute capability 8.0 and later: A100,
    H100, ...) and fp16 elsewhere (V100, T4); an explicit ``bf16`` on a GPU without it is refused rather than
    emulated slowly or silently swapped for fp16. On the CPU everything runs in float32, whatever is asked:
    CPU autocast is slower than float32 on most CPUs, and refusing would stop a config written for GPUs
    (``precision: fp16``) from running its CPU smoke test or CI unchanged.
    """
    if requested not in PRECISIONS:
        from harness.errors import ConfigError

        raise ConfigError(f"precision '{requested}' is not one of {', '.join(PRECISIONS)}")
    if device.type != "cuda" or requested == "fp32":
        return FP32
    with torch.cuda.device(device):
        native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    if requested == "bf16" and not native_bf16:
        from harness.errors import ConfigError

        raise ConfigError(f"precision bf16 was requested but {torch.cuda.get_device_name(device)} does not compute "
                          "bf16 natively; use precision fp16, fp32 or auto")
    return BF16 if requested == "bf16" or (requested == "auto" and native_bf16) else FP16


CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""cuBLAS's workspace setting for reproducible results (NVIDIA's documented value: 8 buffers of 4 MiB)."""


def deterministic_cuda(device: torch.device) -> None:
    """On CUDA, make a fit repeatable, so that a resumed fit ends with the numbers of an uninterrupted one.

    The cost is speed, and it depends on the model: cuDNN stops benchmarking convolution algorithms and keeps
    to deterministic ones (often not the fastest), PyTorch switches the ops that have a deterministic version
    to it (scatter- and index-adds among them, slower) and warns about those that have none, and cuBLAS works
    in a fixed 32 MiB workspace. ``benchmarks/train_step.py`` measures training with these settings on.
    cuBLAS reads ``CUBLAS_WORKSPACE_CONFIG`` when it is first used in a process, so :func:`train` and
    :func:`predict` call this before any CUDA work of theirs, which in a worker process (local, Ray, SLURM)
    is its first; a process that used cuBLAS earlier needs the variable in its environment from the start.
    A value already set is kept. The settings are process-wide. Nothing to do on the CPU.
    """
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


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
          on_batch: Callable[[int], None] | None = None, checkpoint: Path | None = None,
          precision: str = "auto") -> nn.Module:
    """Train ``backbone.model`` in place on ``frames`` against ``targets`` for ``settings.epochs`` epochs.

    With ``checkpoint``, the training state is saved there after every epoch (after ``on_epoch``), and a
    state found there at the start is resumed: epochs already finished are not trained again. ``precision``
    is resolved for ``device`` by :func:`resolve_precision`.
    """
    deterministic_cuda(device)
    resolved = resolve_precision(precision, device)
    model = backbone.model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=settings.epochs + 1, eta_min=settings.eta_min)
    scaler = resolved.grad_scaler(device)
    model_inputs = ModelInputs(backbone.mean, backbone.std)
    finished = 0
    if checkpoint is not None and checkpoint.is_file():
        finished = load_training_state(checkpoint, model, optimizer, scheduler, scaler, device)
    for epoch in range(finished + 1, settings.epochs + 1):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(frames), generator=generator).numpy()
        model.train()
        total, count = torch.zeros((), device=device), 0
        first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        for batch, (x, y) in enumerate(iterate_batches(frames, targets, settings.batch_size, device, order), 1):
            inputs = model_inputs(x, generator if settings.augment else None)
            with resolved.autocast(device):
                loss = task_loss(model(inputs), y, task)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # in fp16, skipped when a scaled gradient overflowed
            scaler.update()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), batch, first_bad)
            total += loss.detach() * len(x)
            count += len(x)
            if on_batch is not None:
                on_batch(len(x))
            kill_point("batch")
        _check_finite_loss(int(first_bad), epoch, settings, resolved)
        scheduler.step()
        model.eval()
        if on_epoch is not None:
            on_epoch(epoch, float(total) / max(count, 1), model)
        if checkpoint is not None:
            save_training_state(checkpoint, epoch, model, optimizer, scheduler, scaler, device)
    model.eval()
    return model


def _check_finite_loss(first_bad_batch: int, epoch: int, settings: FitSettings, precision: Precision) -> None:
    """Stop a diverged fit. The first non-finite batch is tracked on the device and read once per epoch, so
    a GPU step never waits for the host.

    In fp16, an overflowing *gradient* is routine (the scaler skips that step and lowers its scale), but a
    non-finite *loss* stops the fit as in any precision, even when it comes from activations beyond fp16's
    range rather than from the weights: loss scaling cannot help the forward pass, every later step would be
    skipped as well, and the fit would end with weights that stopped changing. The message says so.
    """
    if first_bad_batch >= 0:
        from harness.errors import DivergedError

        hint = "; in fp16, activations beyond its range overflow too: try bf16 or fp32" if precision.scaled else ""
        raise DivergedError(f"the training loss is not finite at epoch {epoch}, batch {first_bad_batch} "
                            f"(lr {settings.lr:g}, batch size {settings.batch_size}): the model diverged; "
                            f"lower the learning rate{hint}")


def _float32_logits(model: nn.Module, inputs: torch.Tensor, precision: Precision,
                    device: torch.device) -> torch.Tensor:
    """Logits computed in float32, the features under ``precision``'s autocast.

    Under autocast the classifier's output is rounded to bf16 (8 significant bits) or fp16, which ties
    probabilities and average-precision ranks that float32 keeps apart; casting it afterwards restores
    nothing. So the body runs under autocast and the head (pooling and classifier, timm's
    ``forward_head``) in float32 on the features cast up; a model without timm's
    ``forward_features``/``forward_head`` split runs in float32 throughout.
    """
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return model(inputs)
    with precision.autocast(device):
        features = model.forward_features(inputs)
    return model.forward_head(features.float())


@torch.no_grad()
def predict(model: nn.Module, backbone: Backbone, frames: FrameSet, task: str, device: torch.device,
            batch_size: int = 128, precision: str = "auto") -> np.ndarray:
    """Eval-mode probabilities (sigmoid or softmax), float32 (N, C), plain resize and normalise only.

    The logits are computed in float32 (see :func:`_float32_logits`), so probabilities on a GPU differ from
    the CPU's by the backbone's rounding only.
    """
    deterministic_cuda(device)
    resolved = resolve_precision(precision, device)
    model.eval()
    model_inputs = ModelInputs(backbone.mean, backbone.std)
    outputs = []
    for x, _ in iterate_batches(frames, None, batch_size, device):
        logits = _float32_logits(model, model_inputs(x), resolved, device)
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
