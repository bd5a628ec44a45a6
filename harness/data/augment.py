"""Batched normalisation and augmentation on the training device.

The reference augmentations, applied per sample with probability 0.5 each, but computed for the whole batch
at once: horizontal flip; shift-scale-rotate (shift up to 6.25 %, scale up to 10 %, rotation up to 45 degrees,
reflected borders); hue/saturation/value jitter of 5 units each on OpenCV's 8-bit scales (hue rotated in YIQ
space, saturation and value as relative changes). Random parameters are drawn on the CPU from the caller's
generator, so a seed gives the same augmentations on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SHIFT_LIMIT = 0.0625
SCALE_LIMIT = 0.1
ROTATE_LIMIT_DEG = 45.0
HUE_LIMIT_DEG = 10.0
SAT_LIMIT = 5 / 255
VAL_LIMIT = 5 / 255

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _uniform(n: int, limit: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2 - 1) * limit


def _applied(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < 0.5


def _shift_scale_rotate(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    on = _applied(n, generator)
    angle = torch.deg2rad(_uniform(n, ROTATE_LIMIT_DEG, generator)) * on
    scale = torch.where(on, 1 + _uniform(n, SCALE_LIMIT, generator), torch.ones(n))
    shift = _uniform(2 * n, SHIFT_LIMIT * 2, generator).view(n, 2) * on[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour_jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    on = _applied(n, generator).float()
    hue = torch.deg2rad(_uniform(n, HUE_LIMIT_DEG, generator)) * on
    sat = 1 + _uniform(n, SAT_LIMIT * 4, generator) * on
    val = 1 + _uniform(n, VAL_LIMIT * 4, generator) * on
    cos, sin, zero, one = torch.cos(hue), torch.sin(hue), torch.zeros(n), torch.ones(n)
    rotate = torch.stack([torch.stack([one, zero, zero], 1),
                          torch.stack([zero, cos * sat, -sin * sat], 1),
                          torch.stack([zero, sin * sat, cos * sat], 1)], 1)
    matrix = (_YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ) * val[:, None, None]
    mixed = torch.einsum("nij,njhw->nihw", matrix.to(x.device, x.dtype), x)
    return mixed.clamp_(0, 1)


def to_model_input(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames → normalised float (B, 3, H, W) in channels_last; augmented if ``generator``."""
    x = frames.permute(0, 3, 1, 2).float().div_(255)
    if generator is not None:
        flip = _applied(x.shape[0], generator).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        x = _shift_scale_rotate(x, generator)
        x = _colour_jitter(x, generator)
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x - mean_t) / std_t).contiguous(memory_format=torch.channels_last)

