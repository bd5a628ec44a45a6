"""Training state saved after every epoch, so that a killed fit resumes at its last finished epoch.

The state holds the model, the optimizer, the learning-rate schedule and fp16's loss scaler, and every
random generator the fit draws from (torch CPU, the CUDA generator of the fit's device, numpy, Python).
Batch order and augmentations are drawn from generators seeded per epoch, so a resumed fit ends with the
same numbers as an uninterrupted one. Only the fit's own GPU's generator is kept, so a fit resumes in a
process that sees fewer or other GPUs. A checkpoint without scaler state (written in bf16 or fp32, or
before fp16 was supported) resumes with a fresh scaler; one with a generator per visible GPU (as written
before) resumes from the first, the GPU a fit ran on then.

Files are written atomically and hold tensors and plain containers only: they load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import SdbenchError
from harness.system.atomic import write_with


def _rng_state(device: torch.device) -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
             "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if isinstance(cuda, list):
        cuda = cuda[0] if cuda else None
    if cuda is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda, device)
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_state(path: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                        device: torch.device) -> None:
    """Save the state after ``epoch`` of a fit on ``device`` (``scaler``: its state only when enabled)."""
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": _rng_state(device)}
    write_with(Path(path), lambda handle: torch.save(state, handle))


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                        device: torch.device) -> int:
    """Restore everything saved at ``path`` into the given objects; return the epoch it was saved after."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise SdbenchError(f"training checkpoint {path} cannot be resumed ({type(exc).__name__}: {first_line}); "
                           f"delete it to restart this job from its first epoch") from exc
    _restore_rng(state["rng"], device)
    return int(state["epoch"])

