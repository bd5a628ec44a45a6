"""Batched normalisation and augmentation on the training device.

The reference augmentations, applied per sample with probability 0.5 each, but computed for the whole batch
at once: horizontal flip; shift-scale-rotate (shift up to 6.25 %, scale up to 10 %, rotation up to 45 degrees,
reflected borders); hue/saturation/value jitter of 5 units each on OpenCV's 8-bit scales (hue rotated in YIQ
space, saturation and value as relative changes). Random parameters are drawn on the CPU from the caller's
generator, so a seed gives the same augmentations on CPU and GPU.

Per sample, the colour jitter, the scaling to [0, 1] and the normalisation are one affine map of the RGB
values (``[matrix | offset]``), and the samples take one of three routes:

- neither moved nor colour-jittered (half of them when augmenting, all of them in evaluation): a copy and a
  per-channel multiply-add straight into the channels_last output, a flip being a reversal of the width axis;
- shift-scale-rotated: converted to float and resampled through their affine map (flip folded in), which
  leaves them planar;
- colour-jittered only: converted to planar float (mirrored where flipped).

Both planar kinds are colour-mapped by one batched matrix product, ``(3, 3) @ (3, H * W)`` plus offsets,
clamped to the valid colour range channel by channel, and written into the channels_last output by a
transposing copy. A matrix product with a long inner dimension runs at BLAS speed; the same
product over channels_last pixels has an inner dimension of 3 and ran several times slower.

Where the time goes on a CPU (64 frames of 224 x 224, 2 cores), and what is done about it:

- a fresh float batch is 38 MB, above glibc's largest mmap threshold, so each one was mapped and
  page-faulted anew, at 12 ms a batch, more than any arithmetic: :class:`ModelInputs` keeps its output and
  scratch memory from one batch to the next (advising huge pages for it as well made no difference once it
  was kept: 14.1-15.8 against 14.4-14.8 ms a batch);
- the work runs a few samples at a time (:data:`_CHUNK_BYTES`), so that each pass reads what the previous one
  wrote from the cache;
- the resampling of the moved samples of a block is one call: the CPU kernel spreads a call's samples over
  its threads. Reflected borders are folded into the sampling grid, which then only needs clamping
  (``padding_mode="border"``): 15 % faster than ``padding_mode="reflection"`` and equal to it. The
  resampling is about half of the remaining time;
- a per-channel operation over channels_last pixels works on rows of 8 pixels against 24-wide constants:
  over 3-wide rows it was several times slower.

Together these took an augmented batch from 55-75 ms to 14-16 ms, and a plain (evaluation) batch from
about 12 ms to 2 ms.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

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

_CHUNK_BYTES = 5 << 19
"""Float bytes of input planes (three per sample) the CPU works through at a time, 4 samples of 224 x 224:
small enough for each pass to find the previous pass's output in the cache. Batches of 64 took 10-20 %
less time than with 7 samples at a time, and single-threaded 28 ms against 46 with 2 samples against 8."""

_PIXELS_PER_ROW = 8
"""Pixels grouped per row of a per-channel multiply-add over channels_last frames: over 3-wide rows it was
several times slower. Fewer when the pixel count of a frame is not a multiple of it."""

_MAX_SAMPLED = math.sqrt(2) / (1 - SCALE_LIMIT) + 2 * SHIFT_LIMIT
"""The largest normalised coordinate that shift-scale-rotate samples: a corner rotated by 45 degrees, zoomed
in as far as the scale allows, then shifted. The one-fold reflection in :func:`_reflect` needs it below 3."""
assert _MAX_SAMPLED < 3


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


@dataclass(frozen=True)
class _Colour:
    """Per-sample (n, 3, 3) RGB ``matrices`` (identity where not ``jittered``)."""

    matrices: torch.Tensor
    jittered: torch.Tensor


def _draw_colour(n: int, generator: torch.Generator) -> _Colour:
    """Hue rotation in YIQ space, saturation and value scaling, on half of the samples."""
    on = _applied(n, generator)
    hue = torch.deg2rad(_uniform(n, HUE_LIMIT_DEG, generator)) * on
    sat = 1 + _uniform(n, SAT_LIMIT * 4, generator) * on
    val = 1 + _uniform(n, VAL_LIMIT * 4, generator) * on
    cos, sin, zero, one = torch.cos(hue), torch.sin(hue), torch.zeros(n), torch.ones(n)
    rotate = torch.stack([torch.stack([one, zero, zero], 1),
                          torch.stack([zero, cos * sat, -sin * sat], 1),
                          torch.stack([zero, sin * sat, cos * sat], 1)], 1)
    matrices = (_YIQ_TO_RGB @ rotate @ _RGB_TO_YIQ) * val[:, None, None]
    return _Colour(matrices=torch.where(on[:, None, None], matrices, torch.eye(3)), jittered=on)


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


def _reflect(grid: torch.Tensor) -> torch.Tensor:
    """Normalised coordinates reflected at the image edges (±1 with ``align_corners=False``), in place.

    ``grid_sample``'s reflection padding reflects the coordinates and then clamps them into the pixel
    centres, so reflecting here and sampling with ``padding_mode="border"`` gives the same values. One fold,
    ``2 * clamp(x, -1, 1) - x``, covers every coordinate below 3 in magnitude (:data:`_MAX_SAMPLED`); it is
    written as a linear extrapolation from ``x`` through the clamped value, two passes over the grid.
    """
    return torch.lerp(grid, grid.clamp(-1, 1), 2.0, out=grid)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (parameters drawn for a batch, row indices) on ``device``. To CUDA it goes through
    pinned memory without blocking: a plain copy would make the host wait for the GPU's queued work."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


class ModelInputs:
    """Turns batches of uint8 (B, H, W, 3) frames into normalised float (B, 3, H, W) channels_last model input
    on their device, augmented when given a generator.

    It keeps its output and scratch memory from one call to the next, so **a result is valid until the next
    call**: the training loop consumes each batch (forward, backward, step) before asking for the next one.
    Use :func:`to_model_input` for a result of one's own.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        mean_t, std_t = torch.tensor(mean), torch.tensor(std)
        self._scale = 1 / (255 * std_t)
        self._offset = -mean_t / std_t
        self._high = (1 - mean_t) / std_t
        self._buffers: dict[str, torch.Tensor] = {}
        self._constants: dict[tuple[torch.device, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, height, width, _ = frames.shape
        device = frames.device
        out = self._buffer("out", (n, height, width, 3), device)
        row_scale, row_offset, offsets = self._constants_on(device, math.gcd(height * width, _PIXELS_PER_ROW))
        if generator is None:
            self._normalise(frames, out, row_scale, row_offset)
            return out.permute(0, 3, 1, 2)
        geometry = _draw_geometry(n, generator)
        colour = _draw_colour(n, generator)
        mirrored, moved, jittered = (flags.tolist() for flags in (geometry.mirrored, geometry.moved, colour.jittered))
        runs = itertools.groupby(range(n), key=lambda i: (moved[i] or jittered[i], mirrored[i]))
        for (transformed, flip), run in runs:
            if not transformed:  # a run of consecutive plain samples, mirrored or not: a few calls for all
                rows = list(run)
                span = slice(rows[0], rows[-1] + 1)
                self._normalise(frames[span].flip(2) if flip else frames[span], out[span], row_scale, row_offset)
        matrices = self._scale[:, None] * colour.matrices
        step = n if device.type == "cuda" else max(1, _CHUNK_BYTES // (height * width * 3 * 4))
        moving = [i for i in range(n) if moved[i]]
        for start in range(0, len(moving), step):
            rows = moving[start:start + step]
            self._resample(frames, rows, geometry.theta[rows], matrices[rows], offsets, out)
        still = [i for i in range(n) if jittered[i] and not moved[i]]
        for start in range(0, len(still), step):
            rows = still[start:start + step]
            self._colour(frames, rows, [mirrored[i] for i in rows], matrices[rows], offsets, out)
        return out.permute(0, 3, 1, 2)

    def _constants_on(self, device: torch.device, copies: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-channel scale and offset repeated over rows of ``copies`` pixels, and the offsets as a
        (3, 1) column, on ``device``: made once."""
        if (device, copies) not in self._constants:
            self._constants[device, copies] = (self._scale.repeat(copies).to(device),
                                               self._offset.repeat(copies).to(device),
                                               self._offset.view(3, 1).to(device))
        return self._constants[device, copies]

    @staticmethod
    def _normalise(frames: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> None:
        """Only scale and normalise (k, H, W, 3) ``frames`` into ``out``: a copy and a multiply-add, over rows
        of whole pixels as wide as the per-channel ``scale`` and ``offset`` repeated (see
        :data:`_PIXELS_PER_ROW`)."""
        rows = out.view(-1, len(scale))
        rows.copy_(frames.reshape(rows.shape))
        torch.addcmul(offset, rows, scale, out=rows)

    def _resample(self, frames: torch.Tensor, rows: list[int], theta: torch.Tensor, matrices: torch.Tensor,
                  offsets: torch.Tensor, out: torch.Tensor) -> None:
        """Resample ``frames[rows]`` through the affine maps ``theta`` (flips included), then colour-map them
        into ``out``."""
        k, (height, width), device = len(rows), frames.shape[1:3], frames.device
        pixels = self._buffer("pixels", (k, height, width, 3), device)
        pixels.copy_(frames.index_select(0, _to_device(torch.tensor(rows), device)))
        grids = _reflect(_affine_grid(_to_device(theta, device), height, width))
        resampled = F.grid_sample(pixels.permute(0, 3, 1, 2), grids, mode="bilinear", padding_mode="border",
                                  align_corners=False)
        self._colour_map_into(resampled, rows, matrices, offsets, out)

    def _colour(self, frames: torch.Tensor, rows: list[int], flipped: list[bool], matrices: torch.Tensor,
                offsets: torch.Tensor, out: torch.Tensor) -> None:
        """Colour-map ``frames[rows]`` (mirrored where ``flipped``) into ``out``."""
        k, (height, width) = len(rows), frames.shape[1:3]
        planes = self._buffer("planes", (k, 3, height, width), frames.device)
        for slot, (i, flip) in enumerate(zip(rows, flipped)):
            planes[slot].copy_((frames[i].flip(1) if flip else frames[i]).permute(2, 0, 1))
        self._colour_map_into(planes, rows, matrices, offsets, out)

    def _colour_map_into(self, samples: torch.Tensor, rows: list[int], matrices: torch.Tensor,
                         offsets: torch.Tensor, out: torch.Tensor) -> None:
        """Apply the colour ``matrices`` and ``offsets`` to planar float (k, 3, H, W) ``samples`` in one batched
        product, clamp the result to the valid colour range channel by channel, and copy it into the
        channels_last ``rows`` of ``out``."""
        k, _, height, width = samples.shape
        coloured = self._buffer("coloured", (k, 3, height * width), samples.device)
        torch.baddbmm(offsets, _to_device(matrices, samples.device), samples.reshape(k, 3, -1), out=coloured)
        for channel, (low, high) in enumerate(zip(self._offset.tolist(), self._high.tolist())):
            coloured[:, channel].clamp_(low, high)
        for i, sample in zip(rows, coloured.view(k, 3, height, width)):
            out[i].copy_(sample.permute(1, 2, 0))

    def _buffer(self, name: str, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """A tensor of ``shape`` on ``device`` kept under ``name``, its memory reused while large enough."""
        size = math.prod(shape)
        kept = self._buffers.get(name)
        if kept is None or kept.device != device or kept.numel() < size:
            kept = torch.empty(size, dtype=torch.float32, device=device)
            self._buffers[name] = kept
        return kept[:size].view(shape)


def to_model_input(frames: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames → normalised float (B, 3, H, W) in channels_last; augmented if ``generator``.

    Order per sample: flip, shift-scale-rotate, then one affine colour map that scales to [0, 1], jitters the
    colour and normalises; with augmentation the result is clamped to the valid colour range (in normalised
    units). A fresh result each call; loops over many batches use :class:`ModelInputs`.
    """
    return ModelInputs(mean, std)(frames, generator)
