"""The fit loop, the batch loader and the batched augmentations, on CPU; the CUDA code paths too, with
torch.cuda stood in for where needed, and on a GPU by the tests marked ``cuda`` (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch

import harness.train.fit as training
from harness.config import FitSettings
from harness.data.augment import ModelInputs, to_model_input
from harness.data.loader import FrameSet, iterate_batches
from harness.errors import ConfigError, DivergedError, SdbenchError
from harness.hooks.registry import get_registry
from harness.train.checkpoint import load_training_state, save_training_state
from harness.train.fit import (BF16, FP16, FP32, pick_device, predict, resolve_precision, seed_everything, task_loss,
                               train)
from harness.train.models import Backbone, build_backbone, resolve_backbone

CPU = torch.device("cpu")


def cuda_only(test):
    """Mark ``test`` as a GPU test (``pytest -m cuda`` selects them) and skip it where CUDA is missing."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))


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


def test_a_gpu_this_process_does_not_see_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"'cuda:1' was requested but this process sees 1 GPU\(s\) "
                                          r"\(CUDA_VISIBLE_DEVICES=3\)"):
        pick_device("cuda:1")


def test_timm_provider_errors_are_actionable():
    registry = get_registry()
    with pytest.raises(ConfigError, match="timm has no architecture 'no_such_net'"):
        build_backbone(registry, resolve_backbone(registry, "timm:no_such_net"), 3, {})
    with pytest.raises(ConfigError, match="without network.*Hugging Face cache.*weights"):
        build_backbone(registry, resolve_backbone(registry, "timm:test_resnet"), 3, {"pretrained": True})
    with pytest.raises(ConfigError, match="weights file .* not found"):
        build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {"weights": "/nonexistent.safetensors"})


def test_too_small_images_for_a_backbone_are_a_clear_error_before_any_training():
    from harness.train.models import check_input_size

    registry = get_registry()
    ref = resolve_backbone(registry, "timm:test_convnext")
    backbone = build_backbone(registry, ref, 3, {})
    check_input_size(backbone, ref, 64)
    with pytest.raises(ConfigError, match=r"backbone timm:test_convnext cannot take 8x8 images .*set image_size"):
        check_input_size(backbone, ref, 8)


def test_a_diverging_fit_stops_naming_the_epoch_and_the_batch():
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
    registry = get_registry()
    backbone = build_backbone(registry, resolve_backbone(registry, "tiny"), 3, {})
    with torch.no_grad():
        for parameter in backbone.model.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(DivergedError, match=r"probabilities are not finite on 24 of 24 frames \(first: frame 0\)"):
        predict(backbone.model, backbone, frameset(), "multiclass", CPU, batch_size=16)


# -- precision, determinism and the CUDA code paths, on the CPU ------------------------------------------------


def fake_gpu(monkeypatch: pytest.MonkeyPatch, native_bf16: bool) -> None:
    """torch.cuda answering as a GPU with or without native bf16 would (emulated bf16 does not count)."""
    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16 and not
                        including_emulation)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")


@pytest.mark.parametrize("native_bf16, requested, expected", [
    (True, "auto", BF16), (False, "auto", FP16), (True, "fp16", FP16), (False, "fp16", FP16), (True, "bf16", BF16),
    (True, "fp32", FP32), (False, "fp32", FP32),
])
def test_precision_on_cuda(monkeypatch: pytest.MonkeyPatch, native_bf16, requested, expected):
    fake_gpu(monkeypatch, native_bf16)
    assert resolve_precision(requested, torch.device("cuda", 1)) == expected


def test_bf16_on_a_gpu_without_it_is_refused_and_the_cpu_runs_float32(monkeypatch: pytest.MonkeyPatch):
    fake_gpu(monkeypatch, native_bf16=False)
    with pytest.raises(ConfigError, match="precision bf16 was requested but Tesla V100 does not compute bf16 natively"):
        resolve_precision("bf16", torch.device("cuda"))
    assert {resolve_precision(name, CPU) for name in ("auto", "bf16", "fp16", "fp32")} == {FP32}
    with pytest.raises(ConfigError, match="precision 'half' is not one of auto, bf16, fp16, fp32"):
        resolve_precision("half", CPU)
    assert FP16.scaled and not BF16.scaled and not FP32.scaled


@pytest.fixture
def restore_determinism():
    flags = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[:2]
    torch.use_deterministic_algorithms(flags[2], warn_only=flags[3])


def test_cuda_fits_run_deterministic_kernels(monkeypatch: pytest.MonkeyPatch, restore_determinism):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    training.deterministic_cuda(CPU)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.backends.cudnn.benchmark
    training.deterministic_cuda(torch.device("cuda", 1))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    training.deterministic_cuda(torch.device("cuda"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # the user's own deterministic setting is kept


def _tiny_backbone(outputs: int = 3):
    registry = get_registry()
    seed_everything(0)
    return build_backbone(registry, resolve_backbone(registry, "tiny"), outputs, {})


def _fp32_probabilities(model: torch.nn.Module, backbone: Backbone, frames: FrameSet, task: str) -> np.ndarray:
    x = torch.from_numpy(frames.gather(np.arange(len(frames))))
    with torch.no_grad():
        return training.probabilities(model.eval()(ModelInputs(backbone.mean, backbone.std)(x)), task).numpy()


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_predict_equals_a_float32_forward(task: str):
    backbone = _tiny_backbone()
    probs = predict(backbone.model, backbone, frameset(), task, CPU, batch_size=16)
    expected = _fp32_probabilities(backbone.model, backbone, frameset(), task)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)


def test_under_autocast_predict_runs_the_head_in_float32(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(training, "resolve_precision", lambda requested, device: BF16)  # as on a GPU
    backbone = _tiny_backbone()
    seen = {}

    def record(name: str):
        def hook(module, args, out) -> None:
            seen.setdefault(name, (args[0].dtype, out.dtype, torch.is_autocast_enabled("cpu")))
        return hook

    first_conv = next(m for m in backbone.model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(record("body"))
    backbone.model.get_classifier().register_forward_hook(record("head"))
    probs = predict(backbone.model, backbone, frameset(), "multilabel", CPU, batch_size=16)
    assert seen["body"][1:] == (torch.bfloat16, True) and seen["head"] == (torch.float32, torch.float32, False)
    expected = _fp32_probabilities(backbone.model, backbone, frameset(), "multilabel")
    np.testing.assert_allclose(probs, expected, atol=0.05)


def test_under_autocast_a_model_without_a_head_split_predicts_in_float32(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(training, "resolve_precision", lambda requested, device: BF16)
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 3))
    backbone = Backbone(model)
    probs = predict(model, backbone, frameset(), "multiclass", CPU, batch_size=16)
    np.testing.assert_allclose(probs, _fp32_probabilities(model, backbone, frameset(), "multiclass"), rtol=0, atol=1e-6)


def test_fp16_fits_keep_their_loss_scale_across_a_resume(monkeypatch: pytest.MonkeyPatch, tmp_path):
    targets = np.random.default_rng(0).random((24, 3)).astype(np.float32)
    checkpoint = tmp_path / "checkpoint.pt"

    def fit(epochs: int, precision):
        monkeypatch.setattr(training, "resolve_precision", lambda requested, device: precision)
        train(_tiny_backbone(), frameset(size=16), targets, "multilabel", FitSettings(epochs=epochs, batch_size=12),
              0, CPU, checkpoint=checkpoint)
        return torch.load(checkpoint, weights_only=True)["scaler"]

    assert fit(1, FP32) == {}
    resumed = fit(2, FP16)  # a checkpoint without scaler state resumes with a fresh scaler
    assert resumed["scale"] == 65536.0 and resumed["_growth_tracker"] == 2  # two steps since the resume
    state = torch.load(checkpoint, weights_only=True)
    state["scaler"]["scale"] = 1024.0
    torch.save(state, checkpoint)
    again = fit(3, FP16)
    assert again["scale"] == 1024.0 and again["_growth_tracker"] == 4


def test_an_infinite_fp16_loss_is_divergence_and_says_which_precision_to_try(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(training, "resolve_precision", lambda requested, device: FP16)
    targets = np.full((24, 3), np.inf, dtype=np.float32)
    with pytest.raises(DivergedError, match=r"lower the learning rate; in fp16, activations beyond its range overflow "
                                            r"too: try bf16 or fp32"):
        train(_tiny_backbone(), frameset(size=16), targets, "multilabel", FitSettings(epochs=1, batch_size=12), 0, CPU)


class FakeCudaGenerators:
    """torch.cuda's generator functions, on a machine without CUDA: one state per device."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.states = {0: torch.tensor([0], dtype=torch.uint8), 1: torch.tensor([1], dtype=torch.uint8)}
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": self.states[self._index(device)].clone())
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": self.states.__setitem__(
            self._index(device), state.clone()))

    @staticmethod
    def _index(device) -> int:
        return torch.device(device).index or 0


def _fit_objects():
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu")


def test_only_the_fits_own_gpu_generator_is_saved_and_restored(monkeypatch: pytest.MonkeyPatch, tmp_path):
    gpus = FakeCudaGenerators(monkeypatch)
    gpu1 = torch.device("cuda", 1)
    save_training_state(tmp_path / "c.pt", 1, *_fit_objects(), gpu1)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)["rng"]["cuda"]
    assert torch.equal(saved, torch.tensor([1], dtype=torch.uint8))
    gpus.states = {1: torch.tensor([9], dtype=torch.uint8)}  # resumed where only the fit's GPU is visible
    assert load_training_state(tmp_path / "c.pt", *_fit_objects(), gpu1) == 1
    assert gpus.states == {1: torch.tensor([1], dtype=torch.uint8)}


def test_checkpoints_with_every_gpus_generator_and_no_scaler_still_resume(monkeypatch: pytest.MonkeyPatch, tmp_path):
    gpus = FakeCudaGenerators(monkeypatch)
    save_training_state(tmp_path / "c.pt", 2, *_fit_objects(), CPU)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert "cuda" not in state["rng"]  # a CPU fit draws nothing from a GPU's generator
    del state["scaler"]
    state["rng"]["cuda"] = [torch.tensor([7], dtype=torch.uint8), torch.tensor([8], dtype=torch.uint8)]  # as before
    torch.save(state, tmp_path / "old.pt")
    model, optimizer, scheduler, scaler = _fit_objects()
    assert load_training_state(tmp_path / "old.pt", model, optimizer, scheduler, scaler, torch.device("cuda")) == 2
    assert torch.equal(gpus.states[0], torch.tensor([7], dtype=torch.uint8)) and scaler.get_scale() == 65536.0
    load_training_state(tmp_path / "old.pt", *_fit_objects(), CPU)
    assert torch.equal(gpus.states[0], torch.tensor([7], dtype=torch.uint8))


# -- on a GPU (benchmarks/gpu_check.sh) ------------------------------------------------------------------------


def _dropout_backbone() -> Backbone:
    """A small convnet with dropout, so that a fit draws from the GPU's own generator."""
    seed_everything(0)
    return Backbone(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3)))


@cuda_only
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_a_resumed_gpu_fit_ends_with_the_numbers_of_an_uninterrupted_one(precision: str, tmp_path):
    cuda = torch.device("cuda")
    targets = np.random.default_rng(0).random((24, 3)).astype(np.float32)
    settings = FitSettings(epochs=3, batch_size=8, lr=1e-3, augment=True)

    def fit(checkpoint, on_epoch=None):
        backbone = _dropout_backbone()
        model = train(backbone, frameset(), targets, "multilabel", settings, 0, cuda, on_epoch=on_epoch,
                      checkpoint=checkpoint, precision=precision)
        return predict(model, backbone, frameset(), "multilabel", cuda, batch_size=16, precision=precision)

    def stop_after_two(epoch, loss, model):
        if epoch == 2:
            torch.manual_seed(1234)  # reseeds the GPU's generator too: the checkpoint must restore it
            raise Interrupted

    uninterrupted = fit(None)
    with pytest.raises(Interrupted):
        fit(tmp_path / "checkpoint.pt", stop_after_two)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert isinstance(state["rng"]["cuda"], torch.Tensor) and bool(state["scaler"]) == (precision == "fp16")
    np.testing.assert_array_equal(fit(tmp_path / "checkpoint.pt"), uninterrupted)


@cuda_only
def test_gpu_probabilities_are_the_cpus_up_to_the_backbones_rounding():
    backbone = _tiny_backbone()
    on_cpu = predict(backbone.model, backbone, frameset(), "multiclass", CPU, batch_size=16)
    on_gpu = predict(backbone.model, backbone, frameset(), "multiclass", torch.device("cuda"), batch_size=16)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.02)
    np.testing.assert_array_equal(predict(backbone.model, backbone, frameset(), "multiclass", torch.device("cuda"),
                                          batch_size=16), on_gpu)
