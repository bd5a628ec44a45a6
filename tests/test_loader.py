"""The batch loader over a frame store built from PyAV-encoded videos: determinism per seed, prefetching,
and the geometric augmentations."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from harness.data import augment
from harness.data.augment import ModelInputs, to_model_input
from harness.data.frames import FrameStore
from harness.data.loader import FrameSet, iterate_batches

CPU = torch.device("cpu")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def frame_set(tmp_path_factory: pytest.TempPathFactory, random_video) -> FrameSet:
    """Random 48x48 videos of 6, 5 and 4 s, labelled at 1 fps."""
    folder = tmp_path_factory.mktemp("videos")
    videos = [random_video(folder / f"v{i}.mp4", seconds, seed=i) for i, seconds in enumerate((6, 5, 4))]
    return FrameSet(FrameStore(folder / "store").load("ds", "fp", videos, 24))


def one_epoch(frames: FrameSet, seed: int, prefetch: int = 1, batch_size: int = 4) -> list[tuple[torch.Tensor, ...]]:
    """What the training loop computes: a seeded order, then augmented model inputs and targets per batch."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(frames), generator=generator).numpy()
    targets = np.arange(len(frames), dtype=np.float32)
    return [(x, to_model_input(x, MEAN, STD, generator), y)
            for x, y in iterate_batches(frames, targets, batch_size, CPU, order, prefetch=prefetch)]


def test_same_seed_gives_identical_batches_and_augmentations_and_another_seed_does_not(frame_set: FrameSet):
    first, again, other = one_epoch(frame_set, 7), one_epoch(frame_set, 7), one_epoch(frame_set, 8)
    assert len(first) == len(again) == len(other) == 4  # 15 frames in batches of 4: the last one has 3
    for (x, inputs, y), (x2, inputs2, y2) in zip(first, again):
        assert torch.equal(x, x2) and torch.equal(inputs, inputs2) and torch.equal(y, y2)
    assert not torch.equal(torch.cat([y for _, _, y in first]), torch.cat([y for _, _, y in other]))
    assert not torch.equal(first[0][1], other[0][1])


def test_batches_hold_the_frames_and_targets_of_the_order(frame_set: FrameSet):
    order = np.array([14, 0, 6, 11, 3])
    targets = np.arange(len(frame_set)) * 10
    batches = list(iterate_batches(frame_set, targets, 2, CPU, order))
    assert [len(x) for x, _ in batches] == [2, 2]  # a final batch of one is dropped when training
    assert torch.equal(torch.cat([y for _, y in batches]), torch.from_numpy(targets[order[:4]]))
    assert torch.equal(torch.cat([x for x, _ in batches]), torch.from_numpy(frame_set.gather(order[:4])))


@pytest.mark.parametrize("prefetch", [2, 5])
def test_prefetching_gives_exactly_the_batches_of_no_prefetching(frame_set: FrameSet, prefetch: int):
    plain, ahead = one_epoch(frame_set, 3, prefetch=0), one_epoch(frame_set, 3, prefetch=prefetch)
    assert len(plain) == len(ahead)
    for a, b in zip(plain, ahead):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    evaluation = [list(iterate_batches(frame_set, None, 4, CPU, prefetch=p)) for p in (0, prefetch)]
    assert [len(x) for x, _ in evaluation[1]] == [4, 4, 4, 3]
    assert all(torch.equal(a, b) and y is None for (a, y), (b, _) in zip(*evaluation))


def test_stopping_early_stops_the_prefetching_thread(frame_set: FrameSet):
    batches = iterate_batches(frame_set, None, 2, CPU, prefetch=1)
    next(batches)
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == "batch-prefetch"]


class FailingFrameSet(FrameSet):
    """Fails on its third batch, as an unreadable memory map would."""

    def gather(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if 8 in rows:
            raise OSError("cannot read frame 8")
        return super().gather(rows, out)


def test_an_error_while_gathering_reaches_the_consumer_after_the_batches_before_it(frame_set: FrameSet):
    received = []
    with pytest.raises(OSError, match="frame 8"):
        for x, _ in iterate_batches(FailingFrameSet(frame_set.arrays), None, 4, CPU, prefetch=1):
            received.append(x)
    assert len(received) == 2
    assert not [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def always(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


def test_flip_alone_is_an_exact_mirror(frame_set: FrameSet, monkeypatch: pytest.MonkeyPatch):
    draws = iter([True, False, False])  # flip, shift-scale-rotate, colour
    monkeypatch.setattr(augment, "_applied", lambda n, generator: torch.full((n,), next(draws)))
    x = torch.from_numpy(frame_set.gather(np.arange(4)))
    out = to_model_input(x, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.Generator())
    torch.testing.assert_close(out, x.permute(0, 3, 1, 2).flip(3).float() / 255, atol=1e-6, rtol=0)


def test_flip_folded_into_a_still_shift_scale_rotate_is_an_exact_mirror(frame_set: FrameSet,
                                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(augment, "_applied", always)
    monkeypatch.setattr(augment, "_uniform", lambda n, limit, generator: torch.zeros(n))
    x = torch.from_numpy(frame_set.gather(np.arange(4)))
    out = to_model_input(x, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.Generator())
    torch.testing.assert_close(out, x.permute(0, 3, 1, 2).flip(3).float() / 255, atol=1e-5, rtol=0)


def test_rotation_moves_pixels_and_keeps_the_range(frame_set: FrameSet, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(augment, "_applied", always)
    x = torch.from_numpy(frame_set.gather(np.arange(8)))
    out = to_model_input(x, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.Generator().manual_seed(0))
    assert out.is_contiguous(memory_format=torch.channels_last) and out.shape == (8, 3, 24, 24)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert float((out - x.permute(0, 3, 1, 2).float() / 255).abs().mean()) > 0.05


def plain_reference(frames: torch.Tensor, seed: int) -> torch.Tensor:
    """The augmentation written the obvious way, whole batch at once, from the same random draws."""
    generator = torch.Generator().manual_seed(seed)
    geometry = augment._draw_geometry(len(frames), generator)
    colour = augment._draw_colour(len(frames), generator).matrices
    x = frames.permute(0, 3, 1, 2).float()
    mirrored = x.flip(3)
    grid = torch.nn.functional.affine_grid(geometry.theta, list(x.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    x = torch.where(geometry.moved[:, None, None, None], moved,
                    torch.where(geometry.mirrored[:, None, None, None], mirrored, x))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = (torch.einsum("nij,njhw->nihw", colour, x) / 255 - mean) / std
    return torch.maximum(torch.minimum(x, (1 - mean) / std), -mean / std)


@pytest.mark.parametrize("chunk_bytes", [8 << 20, 3 * 24 * 24 * 3 * 4])
def test_augmentation_matches_the_plain_reference_whole_or_in_chunks(frame_set: FrameSet, chunk_bytes: int,
                                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(augment, "_CHUNK_BYTES", chunk_bytes)
    x = torch.from_numpy(frame_set.gather(np.arange(len(frame_set))))
    out = to_model_input(x, MEAN, STD, torch.Generator().manual_seed(11))
    torch.testing.assert_close(out, plain_reference(x, 11), atol=1e-4, rtol=0)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    plain = (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
    torch.testing.assert_close(to_model_input(x, MEAN, STD), plain, atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunk_bytes", [8 << 20, 2 * 24 * 24 * 4 * 4])
def test_model_inputs_reusing_its_memory_gives_each_batch_what_a_fresh_transform_gives(
        frame_set: FrameSet, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(augment, "_CHUNK_BYTES", chunk_bytes)
    x = torch.from_numpy(frame_set.gather(np.arange(len(frame_set))))
    inputs = ModelInputs(MEAN, STD)
    for frames, size, seed in ((x, 12, 1), (x, 5, 2), (x, 15, 3), (x, 7, None)):  # smaller, then larger
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        got = inputs(frames[:size], generator).clone()
        assert got.is_contiguous(memory_format=torch.channels_last)
        if seed is None:
            torch.testing.assert_close(got, to_model_input(frames[:size], MEAN, STD), atol=0, rtol=0)
        else:
            torch.testing.assert_close(got, plain_reference(frames[:size], seed), atol=1e-4, rtol=0)


def test_model_inputs_keep_the_colour_offsets_right_when_smaller_frames_reuse_the_memory(
        frame_set: FrameSet, monkeypatch: pytest.MonkeyPatch):
    draws = iter([False, False, True] * 3)  # no flip, no shift-scale-rotate, colour jitter on every sample
    monkeypatch.setattr(augment, "_applied", lambda n, generator: torch.full((n,), next(draws)))
    x = torch.from_numpy(frame_set.gather(np.arange(len(frame_set))))
    small = x[:, ::2, ::2].contiguous()
    inputs = ModelInputs(MEAN, STD)
    inputs(x[:3], torch.Generator())  # memory for 3 samples of 24 x 24: room for 12 of 12 x 12
    inputs(small[:2], torch.Generator())
    got = inputs(small[:6], torch.Generator().manual_seed(1)).clone()
    draws = iter([False, False, True])
    monkeypatch.setattr(augment, "_applied", lambda n, generator: torch.full((n,), next(draws)))
    torch.testing.assert_close(got, to_model_input(small[:6], MEAN, STD, torch.Generator().manual_seed(1)),
                               atol=1e-5, rtol=0)


def test_a_batch_of_large_frames_is_transformed_the_same():
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 512, 512, 3), dtype=np.uint8))
    out = to_model_input(x, MEAN, STD, torch.Generator().manual_seed(4))
    torch.testing.assert_close(out, plain_reference(x, 4), atol=1e-3, rtol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_seed_gives_the_same_augmentations_on_cpu_and_gpu(frame_set: FrameSet):
    x = torch.from_numpy(frame_set.gather(np.arange(12)))
    cpu = to_model_input(x, MEAN, STD, torch.Generator().manual_seed(5))
    gpu = to_model_input(x.cuda(), MEAN, STD, torch.Generator().manual_seed(5))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)
