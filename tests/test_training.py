"""The fit loop, the batch loader and the batched augmentations, on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import FitSettings
from harness.data.augment import to_model_input
from harness.data.loader import FrameSet, iterate_batches
from harness.errors import ConfigError, SdbenchError
from harness.models import build_backbone, resolve_backbone
from harness.plugins import get_registry
from harness.training import pick_device, predict, seed_everything, task_loss, train

CPU = torch.device("cpu")


def frameset(n_videos: int = 2, n: int = 12, size: int = 32) -> FrameSet:
    rng = np.random.default_rng(0)
    return FrameSet([rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for _ in range(n_videos)])


def test_gather_reads_rows_across_videos_in_the_requested_order():
    frames = frameset()
    rows = np.array([13, 0, 23, 5])
    expected = np.stack([frames.arrays[1][1], frames.arrays[0][0], frames.arrays[1][11], frames.arrays[0][5]])
    np.testing.assert_array_equal(frames.gather(rows), expected)


def test_training_batches_drop_a_final_single_frame():
    frames = frameset(1, 5)
    order = np.arange(5)
    sizes = [len(x) for x, _ in iterate_batches(frames, np.zeros(5), 4, CPU, order)]
    assert sizes == [4]
    assert [len(x) for x, _ in iterate_batches(frames, None, 4, CPU)] == [4, 1]


def test_model_input_is_normalised_channels_last_and_plain_without_generator():
    x = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    out = to_model_input(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert out.shape == (2, 3, 8, 8) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out, torch.ones_like(out))


def test_augmentation_is_deterministic_per_seed_and_varies_across_seeds():
    x = torch.from_numpy(frameset(1, 8).arrays[0])
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    a = to_model_input(x, mean, std, torch.Generator().manual_seed(1))
    b = to_model_input(x, mean, std, torch.Generator().manual_seed(1))
    c = to_model_input(x, mean, std, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_grey_stays_grey_under_colour_jitter():
    x = torch.full((16, 8, 8, 3), 128, dtype=torch.uint8)
    out = to_model_input(x, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.Generator().manual_seed(0))
    spread = out.max(dim=1).values - out.min(dim=1).values
    assert float(spread.max()) < 1e-5


def test_losses_accept_hard_and_soft_targets():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    hard = task_loss(logits, torch.tensor([0]), "multiclass")
    soft = task_loss(logits, torch.tensor([[1.0, 0.0, 0.0]]), "multiclass")
    assert torch.isclose(hard, soft)
    assert torch.isclose(task_loss(logits, torch.tensor([[1.0, 0.0, 1.0]]), "multilabel"),
                         torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0, 0, 1]])))


def _fit(seed: int, task: str, targets: np.ndarray) -> tuple[list[float], np.ndarray]:
    registry = get_registry()
    seed_everything(seed)
    backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
    frames, losses = frameset(), []
    settings = FitSettings(epochs=2, batch_size=8, lr=1e-3)
    model = train(backbone, frames, targets, task, settings, seed, CPU,
                  on_epoch=lambda epoch, loss, model: losses.append(loss))
    return losses, predict(model, backbone, frames, task, CPU, batch_size=16)


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_training_is_deterministic_per_seed(task: str):
    rng = np.random.default_rng(0)
    targets = rng.random((24, 3)).astype(np.float32)
    if task == "multiclass":
        targets /= targets.sum(1, keepdims=True)
    losses, probs = _fit(0, task, targets)
    again, probs_again = _fit(0, task, targets)
    other, _ = _fit(1, task, targets)
    assert len(losses) == 2 and losses == again and losses != other
    np.testing.assert_array_equal(probs, probs_again)
    assert probs.shape == (24, 3) and probs.dtype == np.float32
    if task == "multiclass":
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


class Interrupted(Exception):
    pass


def test_fit_interrupted_after_an_epoch_resumes_from_its_checkpoint_to_the_same_model(tmp_path):
    registry = get_registry()
    targets = np.random.default_rng(0).random((24, 3)).astype(np.float32)
    settings = FitSettings(epochs=3, batch_size=8, lr=1e-3)

    def fit(checkpoint, on_epoch=None):
        seed_everything(0)
        backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
        model = train(backbone, frameset(), targets, "multilabel", settings, 0, CPU, on_epoch=on_epoch,
                      checkpoint=checkpoint)
        return predict(model, backbone, frameset(), "multilabel", CPU, batch_size=16)

    def stop_after_two(epoch, loss, model):
        epochs.append(epoch)
        if epoch == 2:
            torch.manual_seed(1234)  # what the lost process did to the global generator must not matter
            raise Interrupted

    epochs: list[int] = []
    uninterrupted = fit(None)
    with pytest.raises(Interrupted):
        fit(tmp_path / "checkpoint.pt", stop_after_two)
    resumed = fit(tmp_path / "checkpoint.pt", lambda epoch, loss, model: epochs.append(epoch))
    assert epochs == [1, 2, 2, 3]  # epoch 2 was not checkpointed, so it is trained again
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_unreadable_checkpoint_says_which_file_and_what_to_do(tmp_path):
    registry = get_registry()
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
    with pytest.raises(SdbenchError, match=r"checkpoint.pt cannot be resumed .*delete it"):
        train(backbone, frameset(), np.zeros((24, 3), np.float32), "multilabel", FitSettings(epochs=1, batch_size=8),
              0, CPU, checkpoint=tmp_path / "checkpoint.pt")


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda")
    assert pick_device("auto") == CPU


def test_timm_provider_errors_are_actionable():
    registry = get_registry()
    with pytest.raises(ConfigError, match="timm has no architecture 'no_such_net'"):
        build_backbone(registry, resolve_backbone(registry, "timm:no_such_net"), 3, {})
    with pytest.raises(ConfigError, match="without network.*Hugging Face cache.*weights"):
        build_backbone(registry, resolve_backbone(registry, "timm:test_resnet"), 3, {"pretrained": True})
    with pytest.raises(ConfigError, match="weights file .* not found"):
        build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {"weights": "/nonexistent.safetensors"})


def test_too_small_images_for_a_backbone_are_a_clear_error_before_any_training():
    from harness.models import check_input_size

    registry = get_registry()
    ref = resolve_backbone(registry, "timm:test_convnext")
    backbone = build_backbone(registry, ref, 3, {})
    check_input_size(backbone, ref, 64)
    with pytest.raises(ConfigError, match=r"backbone timm:test_convnext cannot take 8x8 images .*set image_size"):
        check_input_size(backbone, ref, 8)


def test_a_diverging_fit_stops_naming_the_epoch_and_the_batch():
    from harness.errors import DivergedError

    registry = get_registry()
    backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
    frames = frameset()
    targets = np.random.default_rng(0).random((24, 3)).astype(np.float32)
    targets[13] = np.nan  # batch 2 of 3 at batch size 8 in some order: the loss of that batch is NaN
    settings = FitSettings(epochs=3, batch_size=8, augment=False)
    epochs = []
    with pytest.raises(DivergedError, match=r"the training loss is not finite at epoch 1, batch [1-3] \(lr 0.0002, "
                                            r"batch size 8\): the model diverged; lower the learning rate"):
        train(backbone, frames, targets, "multilabel", settings, 0, CPU, on_epoch=lambda e, loss, m: epochs.append(e))
    assert epochs == []  # nothing of the diverged epoch reaches the history


def test_non_finite_probabilities_are_refused():
    from harness.errors import DivergedError

    registry = get_registry()
    backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
    with torch.no_grad():
        for parameter in backbone.model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"probabilities are not finite on 24 of 24 frames \(first: frame 0\)"):
        predict(backbone.model, backbone, frameset(), "multiclass", CPU, batch_size=16)
