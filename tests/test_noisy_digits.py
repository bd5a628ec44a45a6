"""The third-party dataset package ``examples/sdbench-noisy-digits``: installed like any other package, found
through its entry point, passing its own dataset conformance tests, run by ``bench run --datasets all``, and
its generated data (real digit scans, noisy train/val labels, clean test labels)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from harness.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "sdbench-noisy-digits"
NOISE = 0.4


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package pip-installed (no index, no dependencies) into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(PACKAGE)], check=True, capture_output=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def nd(site: Path) -> ModuleType:
    """The installed module, imported directly."""
    sys.path.insert(0, str(site))
    try:
        module = importlib.import_module("sdbench_noisy_digits")
        assert Path(module.__file__).is_relative_to(site)
        yield module
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("sdbench_noisy_digits", None)


@pytest.fixture(scope="module")
def digits() -> object:
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def generated(nd: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Default options generated into two roots, and pairwise noise into a third."""
    base = tmp_path_factory.mktemp("noisy-digits")
    datasets = {"a": nd.NoisyDigits({"root": str(base / "a")}), "b": nd.NoisyDigits({"root": base / "b"}),
                "pairwise": nd.NoisyDigits({"root": base / "pairwise", "noise_kind": "pairwise"})}
    for dataset in datasets.values():
        dataset.prepare()
    return datasets


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _columns(dataset, video: str) -> dict[str, np.ndarray]:
    return sys.modules[type(dataset).__module__].read_labels(dataset.root / "labels" / f"{video}.csv")


def test_bench_plugins_lists_the_installed_dataset(site: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    listing = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "noisy-digits" in listing.stdout and "sdbench-noisy-digits 0.1.0" in listing.stdout
    code = ("import sys, sdbench_noisy_digits as m; specs = m.sdbench_datasets(); "
            "print(sorted({'torch', 'PIL', 'sklearn'} & set(sys.modules)), [s.name for s in specs])")
    light = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert light.stdout.strip() == "[] ['noisy-digits']", light.stderr


def _env(site: Path) -> dict[str, str]:
    """The installed package and this sdbench, importable in a subprocess that writes no bytecode into the tree."""
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_installed_package_passes_its_dataset_conformance_tests(site: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                             str(tmp_path / "basetemp"), str(PACKAGE / "tests")], cwd=tmp_path, env=_env(site),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed, 1 skipped" in result.stdout  # no label_file: the fingerprint is the generator's


def test_bench_run_datasets_all_includes_the_installed_dataset(site: Path, generated: dict[str, object],
                                                                tmp_path: Path) -> None:
    # The demos at the size and frame size of test_end_to_end, whose data and frames the session shares.
    config = tmp_path / "tiny.yaml"
    config.write_text(f"""
seeds: [0]
image_size: 32
teacher: {{epochs: 1, batch_size: 128}}
student: {{epochs: 1, batch_size: 128}}
dataset_options:
  demo-triplets: {{num_videos: 6}}
  demo-phases: {{num_videos: 6}}
  noisy-digits: {{root: {json.dumps(str(generated["a"].root))}}}
""")
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--datasets", "all", "--strategies", "hard",
                          "--config", str(config), "--out", str(out)], env=_env(site), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "noisy-digits (accuracy)" in run.stdout and "skipped dataset cholec80: no data root" in run.stderr
    primary = pd.read_csv(out / "results.csv").query("primary")
    assert sorted(primary["dataset"]) == ["demo-phases", "demo-triplets", "noisy-digits"]
    assert primary["value"].between(0, 1).all()
    plugins = json.loads((out / "run.json").read_text())["plugins"]["dataset"]
    assert plugins["noisy-digits"] == "sdbench_noisy_digits (sdbench-noisy-digits 0.1.0)"


def test_generation_is_deterministic_and_independent_of_the_root(generated: dict[str, object]) -> None:
    a, b = generated["a"], generated["b"]
    assert a.fingerprint() == b.fingerprint()
    files = _files(a.root)
    assert files == _files(b.root)
    assert len([name for name in files if name.endswith(".png")]) == 1797
    assert files["COMPLETE"] == a.fingerprint().encode()
    assert [p.name for p in a.root.parent.iterdir() if p.name.endswith(".tmp")] == []  # no staging left


def test_pixels_do_not_depend_on_the_noise(generated: dict[str, object]) -> None:
    symmetric, pairwise = _files(generated["a"].root), _files(generated["pairwise"].root)
    pngs = [name for name in symmetric if name.endswith(".png")]
    assert all(symmetric[name] == pairwise[name] for name in pngs)
    for video in ("digits01", "digits12"):
        assert np.array_equal(_columns(generated["a"], video)["digit_index"],
                              _columns(generated["pairwise"], video)["digit_index"])


def test_splits_are_disjoint_chunks_and_stratified(nd: ModuleType, generated: dict[str, object], digits) -> None:
    dataset = generated["a"]
    (split,) = dataset.splits()
    parts = [set(split.train), set(split.val), set(split.test)]
    assert [len(p) for p in parts] == [11, 3, 6]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(nd.videos())
    index = dataset.index()
    assert index.task == "multiclass" and index.num_classes == 10
    assert [sum(len(index.videos[v]) for v in p) for p in (split.train, split.val, split.test)] == [990, 270, 537]
    rows = np.concatenate([_columns(dataset, v)["digit_index"] for v in nd.videos()])
    assert np.array_equal(np.sort(rows), np.arange(1797))  # every image in exactly one video
    per_video = np.array([np.bincount(_columns(dataset, v)["clean_label"], minlength=10) for v in nd.videos()])
    assert (per_video.max(axis=0) - per_video.min(axis=0) <= 1).all()  # each digit spread evenly
    frames = index.videos["digits01"]
    assert frames.labels.dtype == np.int64 and len(frames.source.paths) == len(frames)
    first = _columns(dataset, "digits01")["digit_index"][0]
    assert np.array_equal(np.asarray(Image.open(frames.source.paths[0])),
                          np.asarray(nd.frame_pixels(digits.images[first])))
    assert Image.open(frames.source.paths[0]).size == (32, 32)


def test_test_labels_are_the_true_digits(nd: ModuleType, generated: dict[str, object], digits) -> None:
    for key in ("a", "pairwise"):
        dataset = generated[key]
        for video in nd.videos():
            columns = _columns(dataset, video)
            assert np.array_equal(columns["clean_label"], digits.target[columns["digit_index"]])
        for video in dataset.splits()[0].test:
            columns = _columns(dataset, video)
            assert np.array_equal(columns["label"], columns["clean_label"])


@pytest.mark.parametrize("kind", ["a", "pairwise"])
def test_noise_rate_on_train_and_val(nd: ModuleType, generated: dict[str, object], kind: str) -> None:
    dataset = generated[kind]
    (split,) = dataset.splits()
    for part in ("train", "val"):
        columns = [_columns(dataset, v) for v in getattr(split, part)]
        label = np.concatenate([c["label"] for c in columns])
        clean = np.concatenate([c["clean_label"] for c in columns])
        flipped = label != clean
        assert abs(flipped.mean() - NOISE) <= 0.03, (kind, part, flipped.mean())
        for digit in range(10):  # exactly round(noise * n) per digit: no flip landed on the true digit
            n = int(np.sum(clean == digit))
            assert int(np.sum(flipped[clean == digit])) == int(np.floor(NOISE * n + 0.5))
        if kind == "pairwise":
            assert np.array_equal(label[flipped], [nd.PAIR[d] for d in clean[flipped]])
        else:
            assert len(set(zip(clean[flipped], label[flipped]))) > 60  # spread over the other digits
        assert dataset.index().labels(getattr(split, part))[0].tolist() == label.tolist()


def test_lower_rates_flip_a_subset_and_kinds_flip_the_same_frames(nd: ModuleType) -> None:
    clean = np.repeat(np.arange(10), 50)
    low = nd.noisy_labels(clean, "train", 0.2, "symmetric") != clean
    high = nd.noisy_labels(clean, "train", 0.4, "symmetric") != clean
    pairwise = nd.noisy_labels(clean, "train", 0.4, "pairwise") != clean
    assert low.sum() == 100 and high.sum() == 200 and not (low & ~high).any()
    assert np.array_equal(high, pairwise)
    assert not (nd.noisy_labels(clean, "train", 0.0, "symmetric") != clean).any()


@pytest.mark.parametrize("options, expected", [
    ({"nosie": 0.3}, "unknown option(s) ['nosie']; known: noise, noise_kind, root"),
    ({"noise_kind": "gaussian"}, "option noise_kind must be one of symmetric, pairwise (or asymmetric), got 'gaussian'"),
    ({"noise": 1.2}, "option noise must be a number in [0, 0.9) for noise_kind symmetric"),
    ({"noise": "0.4"}, "got '0.4'"),
    ({"noise": True}, "got True"),
    ({"noise": -0.1}, "got -0.1"),
    ({"noise": 0.5, "noise_kind": "pairwise"}, "option noise must be a number in [0, 0.5) for noise_kind pairwise"),
    ({"root": 3}, "option root must be a path, got 3"),
])
def test_option_errors_name_the_option_expected_and_found(nd: ModuleType, options: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        nd.NoisyDigits(options)
    assert expected in str(error.value) and "noisy-digits" in str(error.value)


def test_fingerprint_depends_on_options_not_paths(nd: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = nd.NoisyDigits().fingerprint()
    assert nd.NoisyDigits({"root": tmp_path / "x", "noise": 0.4}).fingerprint() == default
    assert nd.NoisyDigits({"noise": 0.3}).fingerprint() != default
    assert nd.NoisyDigits({"noise_kind": "pairwise"}).fingerprint() != default
    assert nd.NoisyDigits({"noise_kind": "asymmetric"}).fingerprint() == nd.NoisyDigits({"noise_kind": "pairwise"}).fingerprint()
    monkeypatch.setenv("SDBENCH_HOME", str(tmp_path / "home"))
    assert nd.NoisyDigits().root == tmp_path / "home" / "noisy-digits" / "symmetric-0.4"
    assert nd.NoisyDigits().fingerprint() == default


def test_availability_and_a_clear_error_without_scikit_learn(nd: ModuleType, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert nd.NoisyDigits({"root": tmp_path / "x"}).availability() is None
    monkeypatch.setattr(nd, "sklearn_missing", lambda: nd._MISSING_SKLEARN)
    dataset = nd.NoisyDigits({"root": tmp_path / "x"})
    assert "scikit-learn is not installed" in dataset.availability()
    with pytest.raises(DataError, match="pip install scikit-learn"):
        dataset.prepare()
    assert not (tmp_path / "x").exists()


def test_metrics_and_check(nd: ModuleType, generated: dict[str, object], tmp_path: Path) -> None:
    dataset = generated["a"]
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(10)[[0, 0, 1, 2, 2, 2]]
    scores = dataset.evaluate(labels, probs, np.zeros(6, np.int64))
    assert scores["accuracy"] == pytest.approx(5 / 6)
    assert scores["macro_f1"] == pytest.approx((1 + 2 / 3 + 0.8) / 3)
    assert dataset.check() == []
    copy = nd.NoisyDigits({"root": tmp_path / "copy"})
    shutil.copytree(dataset.root, copy.root)
    labels_file = copy.root / "labels" / "digits03.csv"
    lines = labels_file.read_text().splitlines()
    lines[4] = "4,12,1,7"
    labels_file.write_text("\n".join(lines) + "\n")
    (copy.root / "videos" / "digits05" / "0007.png").unlink()
    problems = copy.check()
    assert len(problems) == 2
    assert "digits03.csv, line 5" in problems[0] and "'4,12,1,7'" in problems[0]
    assert "digits05" in problems[1] and "0007.png is missing" in problems[1]
