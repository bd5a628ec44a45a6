"""Batched normalisation and augmentation on the training device.

The reference augmentations, applied per sample with probability 0.5 each, but computed for the whole batch
at once: horizontal flip; shift-scale-rotate (shift up to 6.25 %, scale up to 10 %, rotation up to 45 degrees,
reflected borders); hue/saturation/value jitter of 5 units each on OpenCV's 8-bit scales (hue rotated in YIQ
space, saturation and value as relative changes). Random parameters are drawn on the CPU from the caller's
generator, so a seed gives the same augmentations on CPU and GPU.

Where the time goes on a CPU, and what is done about it (64 frames of 224 x 224):

- a fresh float batch is 38 MB, above glibc's mmap threshold, so each one is mapped and page-faulted anew:
  that cost more than any arithmetic. The output is the only batch-sized float allocation, on huge pages
  (:mod:`harness.data.hugepages`); the work runs a few samples at a time (:data:`_CHUNK_BYTES`) through a
  scratch block that the allocator recycles;
- the resampling of all moved samples of a block is one call: the CPU kernel spreads a call's samples over
  its threads;
- a flip alone is an exact mirror, done as a reversal of the width axis; only the samples that
  shift-scale-rotate are resampled (their flip folded into the same affine map);
- the colour transform is a per-sample 3x3 matrix product over pixels, a matrix product with a 3-wide inner
  dimension that BLAS runs at a fraction of its speed; pixels are grouped 8 at a time into rows of 24 values
  times a block-diagonal 24x24 matrix, which ran the product 3-4x faster despite the zeros; the clamp works
  on the same 24-wide rows (over 3-wide pixels it was 5x slower).

Together these took an augmented batch from 180-280 ms to 65-75 ms on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.data.hugepages import empty_on_huge_pages

SHIFT_LIMIT = 0.0625
SCALE_LIMIT = 0.1
ROTATE_LIMIT_DEG = 45.0
HUE_LIMIT_DEG = 10.0
SAT_LIMIT = 5 / 255
VAL_LIMIT = 5 / 255

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)

_CHUNK_BYTES = 8 << 20
"""Float bytes of the scratch block the CPU works through: small enough to be recycled by the allocator."""

_PIXELS_PER_ROW = 8
"""Pixels grouped per row of the colour matrix product (see the module docstring); fewer when the pixel
count of a frame is not a multiple of it."""


def _uniform(n: int, limit: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * 2 - 1) * limit


def _applied(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) < 0.5


@dataclass(frozen=True)
class _Geometry:
    """Per-sample geometric augmentation: ``mirrored`` samples are flipped only; ``moved`` samples are
    resampled through the affine map ``theta`` (normalised coordinates, flip included)."""

    mirrored: torch.Tensor
    moved: torch.Tensor
    theta: torch.Tensor


def _draw_geometry(n: int, generator: torch.Generator) -> _Geometry:
    flip = _applied(n, generator)
    on = _applied(n, generator)
    angle = torch.deg2rad(_uniform(n, ROTATE_LIMIT_DEG, generator)) * on
    scale = torch.where(on, 1 + _uniform(n, SCALE_LIMIT, generator), torch.ones(n))
    shift = _uniform(2 * n, SHIFT_LIMIT * 2, generator).view(n, 2) * on[:, None]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    mirror = torch.where(flip, -1.0, 1.0)
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1)
    return _Geometry(mirrored=flip & ~on, moved=on, theta=theta)


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


def _affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(theta, ..., align_corners=False)`` as one multiply-add over rows of interleaved (x, y)
    values; the batched matrix product with a 3-wide inner dimension that ``F.affine_grid`` does was slower
    on the CPU than the resampling itself."""
    n = len(theta)
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    along_x = (theta[:, None, :, 0] * xs[None, :, None] + theta[:, None, :, 2]).view(n, 1, 2 * width)
    along_y = theta[:, None, :, 1].expand(n, width, 2).reshape(n, 1, 2 * width)
    return torch.addcmul(along_x, ys[None, :, None], along_y).view(n, height, width, 2)


def _to_float(frames: torch.Tensor, geometry: _Geometry | None, rows: slice) -> torch.Tensor:
    """Float (n, H, W, 3) copy of uint8 ``frames``, the samples ``rows`` of the batch, flipped and
    shift-scale-rotated per ``geometry``.

    The resampling takes all moved samples in one call: the CPU kernel spreads a call's samples over its
    threads, so one call per sample ran on a single core.
    """
    pixels = frames.float()
    if geometry is None:
        return pixels
    for i in geometry.mirrored[rows].nonzero().squeeze(1).tolist():
        pixels[i] = frames[i].flip(1)
    moved = geometry.moved[rows].nonzero().squeeze(1)
    if len(moved):
        grids = _affine_grid(geometry.theta[rows][moved].to(pixels.device, pixels.dtype), *pixels.shape[1:3])
        planes = frames[moved.to(pixels.device)].float().permute(0, 3, 1, 2)
        resampled = F.grid_sample(planes, grids, mode="bilinear", padding_mode="reflection", align_corners=False)
        for i, sample in zip(moved.tolist(), resampled):
            pixels[i].copy_(sample.permute(1, 2, 0))  # per sample: 5x faster than one indexed assignment
    return pixels


def _block_diagonal(matrices: torch.Tensor, copies: int) -> torch.Tensor:
    """(n, 3c, 3c) with ``copies`` copies of each transposed (n, 3, 3) matrix on the diagonal."""
    eye = torch.eye(copies, dtype=matrices.dtype, device=matrices.device)
    blocks = torch.einsum("ij,nba->niajb", eye, matrices)
    return blocks.reshape(len(matrices), 3 * copies, 3 * copies)


def to_model_input(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames → normalised float (B, 3, H, W) in channels_last; augmented if ``generator``.

    Order per sample: flip, shift-scale-rotate, then one 3x3 matrix and per-channel offset that scale to
    [0, 1], jitter the colour and normalise; with augmentation the result is clamped to the valid colour
    range (in normalised units).
    """
    n, height, width, _ = frames.shape
    device = frames.device
    mean_t, std_t = torch.tensor(mean), torch.tensor(std)
    scale, low, high = 1 / (255 * std_t), -mean_t / std_t, (1 - mean_t) / std_t
    if generator is None:
        geometry, matrices = None, torch.diag(scale).expand(n, 3, 3)
    else:
        geometry = _draw_geometry(n, generator)
        matrices = scale[:, None] * _colour_matrices(n, generator)
    copies = math.gcd(height * width, _PIXELS_PER_ROW)
    transforms = _block_diagonal(matrices.to(device), copies)
    offsets, low, high = (bound.repeat(copies).to(device) for bound in (low, low, high))

    out = empty_on_huge_pages((n, height, width, 3), torch.float32, device)
    step = n if device.type == "cuda" else max(1, _CHUNK_BYTES // (height * width * 3 * 4))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        pixels = _to_float(frames[rows], geometry, rows)
        block = out[rows].view(len(pixels), -1, 3 * copies)
        torch.baddbmm(offsets, pixels.view(len(pixels), -1, 3 * copies), transforms[rows], out=block)
        if geometry is not None:
            torch.clamp(block, low, high, out=block)
    return out.permute(0, 3, 1, 2)
