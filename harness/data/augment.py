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


def _flip_shift_scale_rotate(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip and shift-scale-rotate as one affine resampling, done only for the samples that need it."""
    n = x.shape[0]
    flip = _applied(n, generator)
    on = _applied(n, generator)
    angle = torch.deg2rad(_uniform(n, ROTATE_LIMIT_DEG, generator)) * on
    scale = torch.where(on, 1 + _uniform(n, SCALE_LIMIT, generator), torch.ones(n))
    shift = _uniform(2 * n, SHIFT_LIMIT * 2, generator).view(n, 2) * on[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    mirror = torch.where(flip, -1.0, 1.0)
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    moved = (flip | on).nonzero().squeeze(1)
    if len(moved) == 0:
        return x
    subset = x[moved.to(x.device)]
    grid = F.affine_grid(theta[moved].to(x.device, x.dtype), list(subset.shape), align_corners=False)
    x = x.clone()
    x[moved.to(x.device)] = F.grid_sample(subset, grid, mode="bilinear", padding_mode="reflection",
                                          align_corners=False)
    return x


def _colour_matrices(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) RGB matrices: hue rotation in YIQ space, saturation and value scaling."""
    on = _applied(n, generator).float()
    hue = torch.deg2rad(_uniform(n, HUE_LIMIT_DEG, generator)) * on
    sat = 1 + _uniform(n, SAT_LIMIT * 4, generator) * on
    val = 1 + _uniform(n, VAL_LIMIT * 4, generator) * on
    cos, sin, zero, one = torch.cos(hue), torch.sin(hue), torch.zeros(n), torch.ones(n)
    rotate = torch.stack([torch.stack([one, zero, zero], 1),
                          torch.stack([zero, cos * sat, -sin * sat], 1),
                          torch.stack([zero, sin * sat, cos * sat], 1)], 1)
    return (_YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ) * val[:, None, None]


def to_model_input(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames → normalised float (B, 3, H, W) in channels_last; augmented if ``generator``.

    Scaling to [0, 1], the colour jitter and the normalisation are folded into one per-sample 3x3 matrix and
    one per-channel offset, so the batch is traversed once for all three; clamping to the valid colour range
    happens in normalised units.
    """
    x = frames.permute(0, 3, 1, 2).float()
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    if generator is None:
        out = x.div_(255 * std_t).sub_(mean_t / std_t)
        return out.contiguous(memory_format=torch.channels_last)
    x = _flip_shift_scale_rotate(x, generator)
    colour = _colour_matrices(x.shape[0], generator).to(x.device, x.dtype)
    matrix = colour / (255 * std_t.view(1, 3, 1))
    out = torch.einsum("nij,njhw->nihw", matrix, x).sub_(mean_t / std_t)
    out = torch.maximum(torch.minimum(out, (1 - mean_t) / std_t), -mean_t / std_t)
    return out.contiguous(memory_format=torch.channels_last)
