"""Students you can use: model files kept by every student and by gc, ``bench export``, loading with timm
alone, and ``bench predict`` on a video and on a folder of images."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from harness.cli import main

PLAN = """
datasets: [demo-phases]
strategies: [hard]
seeds: [0]
image_size: 16
teacher: {epochs: 1, batch_size: 32}
student: {epochs: 1, batch_size: 32}
dataset_options:
  demo-phases: {num_videos: 5}
"""
SELECT = ["--dataset", "demo-phases", "--strategy", "hard"]


@pytest.fixture(scope="module")
def plan(config_file: Callable[[str], Path]) -> Path:
    return config_file(PLAN)


@pytest.fixture(scope="module")
def run_dir(plan: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:  # the session's home (conftest), set before any test of the module
        patch.setenv("SDBENCH_HOME", str(tmp_path_factory.getbasetemp() / "sdbench-home"))
        assert main(["run", "--config", str(plan), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def student(run_dir: Path) -> Path:
    (key,) = set(pd.read_csv(run_dir / "results.csv")["student_key"])
    return run_dir / "jobs" / "student" / key


@pytest.fixture(scope="module")
def exported(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("exported") / "model"
    assert main(["export", str(run_dir), str(dest), *SELECT]) == 0
    return dest


def load_with_timm_alone(directory: Path):
    """The three lines of the README, run in ``directory``."""
    import safetensors.torch
    import timm

    cfg = json.load(open(directory / "model.json"))
    model = timm.create_model(cfg["architecture"], num_classes=cfg["num_classes"], pretrained=False)
    model.load_state_dict(safetensors.torch.load_file(directory / "model.safetensors"))
    return cfg, model.eval()


def probabilities(cfg: dict, model, frames: np.ndarray) -> np.ndarray:
    """softmax(model(frames)) through the harness's normalisation."""
    import torch

    from harness.data.augment import to_model_input

    with torch.no_grad():
        logits = model(to_model_input(torch.from_numpy(np.ascontiguousarray(frames)), cfg["mean"], cfg["std"]))
    return torch.softmax(logits, dim=1).numpy()


def test_a_finished_student_keeps_its_weights_and_a_card_saying_how_to_use_them(plan: Path, student: Path) -> None:
    from harness.config import load_config
    from harness.hooks.registry import get_registry
    from harness.runs.plan import Plan

    card = json.loads((student / "model.json").read_text())
    index = Plan(load_config(plan), get_registry()).dataset("demo-phases").index
    assert (student / "model.safetensors").stat().st_size > 0
    assert card["class_names"] == list(index.class_names) and card["num_classes"] == len(index.class_names) == 7
    assert {k: card[k] for k in ("backbone", "provider", "architecture", "image_size", "task", "activation",
                                 "dataset", "split", "strategy", "seed", "job_key")} == {
        "backbone": "tiny", "provider": "timm", "architecture": "test_resnet", "image_size": 16,
        "task": "multiclass", "activation": "softmax", "dataset": "demo-phases", "split": "default",
        "strategy": "hard", "seed": 0, "job_key": student.name}
    assert card["mean"] == card["std"] == [0.5, 0.5, 0.5]  # test_resnet's, not ImageNet's


def test_the_export_loads_with_timm_alone_and_reproduces_the_students_test_predictions(
        plan: Path, student: Path, exported: Path) -> None:
    from harness.config import load_config
    from harness.experiments.run import Runner
    from harness.hooks.registry import get_registry

    for name in ("model.safetensors", "model.json"):
        assert (exported / name).read_bytes() == (student / name).read_bytes()
    cfg, model = load_with_timm_alone(exported)
    runner = Runner(load_config(plan), student.parent, get_registry())
    data = runner.plan.dataset("demo-phases")
    frames = np.concatenate(runner.context.frames(data, data.splits[cfg["split"]].test).arrays)
    stored = np.load(student / "test_probs.npy")
    assert len(frames) == len(stored)
    np.testing.assert_allclose(probabilities(cfg, model, frames), stored, atol=1e-5, rtol=0)


def test_predict_writes_one_row_per_sampled_video_frame(exported: Path, encode_video, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from harness.data.video import decode_sampled

    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    encode_video(video, (rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(75)), 3)  # 3 s
    out = tmp_path / "clip.csv"
    assert main(["predict", str(exported), str(video), "--fps", "2", "--out", str(out), "--device", "cpu",
                 "--batch-size", "4"]) == 0
    assert "wrote the probabilities of 6 frame(s)" in capsys.readouterr().err
    table = pd.read_csv(out)
    cfg, model = load_with_timm_alone(exported)
    assert list(table.columns) == ["frame", "time_s", *cfg["class_names"]]
    assert table["frame"].tolist() == list(range(6))
    np.testing.assert_allclose(table["time_s"], np.arange(6) / 2)
    probs = table[cfg["class_names"]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    expected = probabilities(cfg, model, decode_sampled(video, 2, cfg["image_size"]))
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)


def test_predict_on_a_folder_of_images_takes_them_in_name_order(exported: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = {name: rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for name in ("b.png", "a.png", "c.PNG")}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / name, format="PNG")
    (folder / "notes.txt").write_text("not a frame")
    Image.fromarray(images["a.png"]).save(folder / ".hidden.png")
    capsys.readouterr()
    assert main(["predict", str(exported), str(folder), "--quiet"]) == 0  # the CSV to standard output
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    cfg, model = load_with_timm_alone(exported)
    assert table["file"].tolist() == ["a.png", "b.png", "c.PNG"] and table["frame"].tolist() == [0, 1, 2]
    size = cfg["image_size"]
    resized = np.stack([np.asarray(Image.fromarray(images[name]).resize((size, size), Image.BILINEAR))
                        for name in table["file"]])
    np.testing.assert_allclose(table[cfg["class_names"]].to_numpy(), probabilities(cfg, model, resized),
                               atol=1e-5, rtol=0)


def test_predict_says_what_is_wrong_with_its_model_or_its_frames(exported: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    out = tmp_path / "out.csv"
    cases = [([str(empty), str(broken)], "has no model.json"),
             ([str(exported), str(broken)], "broken.mp4: cannot decode video"),
             ([str(exported), str(empty)], "holds no image files"),
             ([str(exported), str(tmp_path / "absent.mp4")], "not found: expected a video file or a folder")]
    for args, message in cases:
        assert main(["predict", *args, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def _run_listing(run_dir: Path, tmp_path: Path, rows: pd.DataFrame) -> Path:
    """A run directory sharing ``run_dir``'s jobs whose results.csv holds ``rows``."""
    fake = tmp_path / "listed"
    fake.mkdir()
    (fake / "jobs").symlink_to(run_dir / "jobs")
    rows.to_csv(fake / "results.csv", index=False)
    return fake


def test_export_lists_the_choices_when_no_student_or_several_match(run_dir: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(run_dir), str(tmp_path / "x"), "--dataset", "demo-phases", "--strategy", "iee"]) == 2
    assert "no student with strategy iee" in (err := capsys.readouterr().err) and "demo-phases: hard" in err
    results = pd.read_csv(run_dir / "results.csv")
    several = _run_listing(run_dir, tmp_path, pd.concat([results, results.assign(seed=1)]))
    assert main(["export", str(several), str(tmp_path / "x"), *SELECT]) == 2
    assert "2 students of dataset demo-phases, strategy hard" in (err := capsys.readouterr().err)
    assert "--seed 0; --seed 1" in err and not (tmp_path / "x").exists()
    assert main(["export", str(several), str(tmp_path / "x"), *SELECT, "--seed", "1"]) == 0
    assert (tmp_path / "x" / "model.safetensors").is_file()


def test_export_of_a_student_that_predates_model_files_says_how_to_get_them(
        run_dir: Path, student: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = tmp_path / "old"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("model.*"))
    assert main(["export", str(old), str(tmp_path / "x"), *SELECT]) == 2
    err = capsys.readouterr().err
    assert f"{old / 'jobs' / 'student' / student.name} has no model.json or model.safetensors" in err
    assert "remove its directory and run the same 'bench run' again" in err


def test_gc_removes_the_checkpoint_and_keeps_the_model_files(run_dir: Path, student: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    kept = copy / "jobs" / "student" / student.name
    models = {name: (kept / name).read_bytes() for name in ("model.safetensors", "model.json")}
    assert (kept / "checkpoint.pt").is_file()
    assert main(["gc", str(copy)]) == 0
    assert "model." not in capsys.readouterr().out
    assert not (kept / "checkpoint.pt").exists()
    assert {name: (kept / name).read_bytes() for name in models} == models
    from PIL import Image

    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "frames" / "0.png")
    assert main(["predict", str(kept), str(tmp_path / "frames"), "--quiet"]) == 0  # a student directory is a model
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 1
