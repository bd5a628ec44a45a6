"""`bench new-strategy` and `bench new-dataset` scaffold packages that pass their conformance kits; a broken
strategy fails it readably."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_scaffold_writes_an_installable_package(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["new-strategy", "top-k", str(tmp_path / "pkg")]) == 0
    assert "pip install -e . && pytest" in capsys.readouterr().out
    files = sorted(str(p.relative_to(tmp_path / "pkg")) for p in (tmp_path / "pkg").rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "sdbench_top_k/__init__.py", "tests/test_sdbench_top_k.py"]
    pyproject = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert '[project.entry-points.sdbench]\nsdbench_top_k = "sdbench_top_k"' in pyproject
    module = (tmp_path / "pkg" / "sdbench_top_k" / "__init__.py").read_text()
    assert "class TopK(Strategy):" in module and 'StrategySpec("top-k"' in module
    compile(module, "module", "exec")
    compile((tmp_path / "pkg" / "tests" / "test_sdbench_top_k.py").read_text(), "tests", "exec")


def test_dataset_scaffold_writes_an_installable_package(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["new-dataset", "my-videos", str(tmp_path / "pkg")]) == 0
    assert "pip install -e . && pytest" in capsys.readouterr().out
    files = sorted(str(p.relative_to(tmp_path / "pkg")) for p in (tmp_path / "pkg").rglob("*") if p.is_file())
    assert files == ["README.md", "pyproject.toml", "sdbench_my_videos/__init__.py",
                     "tests/test_sdbench_my_videos.py"]
    pyproject = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert '[project.entry-points.sdbench]\nsdbench_my_videos = "sdbench_my_videos"' in pyproject
    module = (tmp_path / "pkg" / "sdbench_my_videos" / "__init__.py").read_text()
    assert "class MyVideos(Dataset):" in module and 'root_env = "SDBENCH_MY_VIDEOS_ROOT"' in module
    tests = (tmp_path / "pkg" / "tests" / "test_sdbench_my_videos.py").read_text()
    assert "class TestMyVideos(DatasetConformance):" in tests
    compile(module, "module", "exec")
    compile(tests, "tests", "exec")


@pytest.mark.parametrize("command, name, message", [
    ("new-strategy", "Top_K", "strategy name 'Top_K' must be lowercase letters and digits"),
    ("new-strategy", "iese", "a strategy named 'iese' is already registered"),
    ("new-dataset", "My_Videos", "dataset name 'My_Videos' must be lowercase letters and digits"),
    ("new-dataset", "cholec80", "a dataset named 'cholec80' is already registered"),
])
def test_scaffold_rejects_bad_names(tmp_path: Path, capsys: pytest.CaptureFixture, command: str, name: str,
                                    message: str):
    assert main([command, name, str(tmp_path / "pkg")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("command", ["new-strategy", "new-dataset"])
def test_scaffold_refuses_a_non_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture, command: str):
    (tmp_path / "keep.txt").write_text("mine")
    assert main([command, "top-k", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err


def install(site: Path, *packages: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), *map(str, packages)], check=True, capture_output=True,
                   timeout=300)


def run_tests(package: Path, site: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=package, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scaffolded strategy package (``strategy/``) and dataset package (``dataset/``), installed by one pip
    run into ``site/``."""
    root = tmp_path_factory.mktemp("scaffolded")
    assert main(["new-strategy", "top-k", str(root / "strategy")]) == 0
    assert main(["new-dataset", "my-videos", str(root / "dataset")]) == 0
    install(root / "site", root / "strategy", root / "dataset")
    return root


@pytest.mark.slow
def test_scaffolded_package_passes_and_a_broken_one_fails_readably(scaffolded: Path, tmp_path: Path):
    result = run_tests(scaffolded / "strategy", scaffolded / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "34 passed" in result.stdout  # 2 classes x (1 discovery + 4 scenarios x 4 checks)

    broken = tmp_path / "broken"
    assert main(["new-strategy", "top-k", str(broken)]) == 0
    module = broken / "sdbench_top_k" / "__init__.py"
    module.write_text(module.read_text().replace("Checkpoint(seed, e) for e in sorted(best)",
                                                 "Checkpoint(seed, e + 100) for e in sorted(best)"))
    install(tmp_path / "site-broken", broken)
    result = run_tests(broken, tmp_path / "site-broken")
    assert result.returncode == 1
    assert re.search(r"ConformanceError: strategy 'top-k', student seed 0: selected checkpoint s0e1\d\d, but "
                     r"teacher seed 0 has epochs \[1, 2, 3, 4, 5, 6, 7, 8\]", result.stdout), result.stdout


@pytest.mark.slow
def test_scaffolded_dataset_package_passes_the_dataset_conformance_tests(scaffolded: Path):
    result = run_tests(scaffolded / "dataset", scaffolded / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout  # 8 dataset conformance checks + the package's check() test
