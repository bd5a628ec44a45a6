"""Training state saved after every epoch, so that a killed fit resumes at its last finished epoch.

The state holds the model, the optimizer and the learning-rate schedule, and every random generator the
fit draws from (torch CPU and CUDA, numpy, Python). Batch order and augmentations are drawn from
generators seeded per epoch, so a resumed fit ends with the same numbers as an uninterrupted one. Training
runs in bf16 autocast, which needs no loss scaling, so there is no gradient-scaler state to keep.

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

from harness.atomic import write_with
from harness.errors import SdbenchError


def _rng_state() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "python": random.getstate()}


def _restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_state(path: Path, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": _rng_state()}
    write_with(Path(path), lambda handle: torch.save(state, handle))


def load_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
    """Restore everything saved at ``path`` into the given objects; return the epoch it was saved after."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        raise SdbenchError(f"training checkpoint {path} cannot be resumed ({type(exc).__name__}: {first_line}); "
                           f"delete it to restart this job from its first epoch") from exc
    _restore_rng(state["rng"])
    return int(state["epoch"])

