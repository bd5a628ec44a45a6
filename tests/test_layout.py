"""The house rules of ``harness/``: rooms stacked in layers, imports going downwards only, no import cycle,
small modules, and a public surface (``harness.api`` and the old module paths) that keeps working."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "harness"

LAYERS = ["harness._moved", "harness", "harness.errors", "harness.system", "harness.metrics", "harness.config",
          "harness.hooks", "harness.data", "harness.train", "harness.science", "harness.runs", "harness.report",
          "harness.students", "harness.experiments", "harness.kits", "harness.api", "harness.cli"]
"""The rooms from the bottom up: a module may import its own room's modules and those of the rooms below."""

MAX_LINES = 300
LONG_MODULE_MARK = "longer than 300 lines because"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(HARNESS.rglob("*.py"))}


def imported(name: str) -> set[str]:
    """The harness modules that module ``name`` imports, anywhere in its code (lazy imports included)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target == "harness" or target.startswith("harness.")}
    return found


GRAPH = {name: imported(name) for name in MODULES}


def room(name: str) -> str:
    return max((layer for layer in LAYERS if name == layer or name.startswith(layer + ".")), key=len)


def test_every_module_lives_in_a_room_of_the_layers() -> None:
    assert {room(name) for name in MODULES} <= set(LAYERS)
    for name in MODULES:
        if name not in LAYERS and name.count(".") == 1:
            pytest.fail(f"{name} is a module at the top of harness/ outside the rooms of LAYERS")


def test_imports_go_downwards_only() -> None:
    upward = [f"{name} imports {target} ({room(target)} is above {room(name)})"
              for name, targets in GRAPH.items() for target in targets
              if target in MODULES and LAYERS.index(room(target)) > LAYERS.index(room(name))]
    assert not upward, "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every import cycle a depth-first walk of ``graph`` meets, as ``a -> b -> a``."""
    state: dict[str, int] = {}
    found = []

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name] & graph.keys()):
            if state.get(target) == 1:
                found.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return found


def test_no_import_cycle_among_harness_modules() -> None:
    found = cycles(GRAPH)
    assert not found, "\n".join(found)


def test_the_cycle_check_finds_a_cycle_through_any_form_of_import(tmp_path: Path) -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "x"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    source = "import harness.runs.jobs\nfrom harness.runs import plan\nfrom . import store\n" \
             "def lazy():\n    from harness.report.results import write_results\n"
    MODULES["harness.runs.probe"] = path = tmp_path / "probe.py"
    path.write_text(source)
    try:
        assert imported("harness.runs.probe") == {"harness.runs.jobs", "harness.runs.plan", "harness.runs.store",
                                                  "harness.report.results"}
    finally:
        del MODULES["harness.runs.probe"]


def test_no_module_is_longer_than_300_lines_unless_it_says_why() -> None:
    long = [f"{name}: {len(path.read_text().splitlines())} lines" for name, path in MODULES.items()
            if len(path.read_text().splitlines()) > MAX_LINES and LONG_MODULE_MARK not in path.read_text()]
    assert not long, "\n".join(long)


def test_every_room_says_what_it_owns_and_what_it_may_import() -> None:
    for layer in LAYERS:
        path = MODULES.get(layer)
        if path is None or path.name != "__init__.py" or layer == "harness":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert len(doc.split()) >= 25 and "import" in doc, f"{path}: the room's docstring"


def test_nothing_inside_harness_imports_the_facade_or_an_old_path() -> None:
    from harness._moved import MOVED

    offending = [f"{name} imports {target}" for name, targets in GRAPH.items() for target in targets
                 if (target == "harness.api" and name != "harness.api") or target in MOVED]
    assert not offending, "\n".join(offending)


def test_the_plan_imports_no_torch() -> None:
    code = "import sys, harness.runs.plan; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_api_is_light_and_every_name_resolves() -> None:
    code = ("import sys; from harness.api import DatasetSpec, Strategy, hookimpl, Executor; "
            "heavy = {'torch', 'av', 'PIL', 'pandas'} & set(sys.modules); assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    import harness.api as api

    for name, home in api.HOME.items():
        assert getattr(api, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="has no attribute 'Runner'"):
        api.Runner  # noqa: B018 - the access is the test


@pytest.mark.parametrize("old, name, new", [
    ("harness.plugins", "hookimpl", "harness.hooks.registry"),
    ("harness.strategy", "Selection", "harness.science.strategy"),
    ("harness.executor", "Job", "harness.runs.plan"),
    ("harness.sweep", "parse_epochs", "harness.science.sweep"),
    ("harness.regret", "regret_table", "harness.science.regret"),
    ("harness.export", "load_model", "harness.train.model_files"),
])
def test_the_old_module_paths_still_import_with_a_deprecation_warning(old: str, name: str, new: str) -> None:
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError, match=f"module '{old}'.*has no attribute 'nothing'"):
        module.nothing  # noqa: B018 - the access is the test


def test_every_citation_of_the_protocols_names_a_section_of_docs_protocols_md() -> None:
    """The code cites ``docs/protocols.md section N``; the document must be in the repository and have it."""
    import re

    sections = set(re.findall(r"^## (\d+[a-z]?)\. ", (ROOT / "docs" / "protocols.md").read_text(), re.M))
    cited = {(str(path.relative_to(ROOT)), number) for folder in ("harness", "plugins", "tests")
             for path in (ROOT / folder).rglob("*.py")
             for number in re.findall(r"docs/protocols\.md section (\d+[a-z]?)", path.read_text())}
    assert len(cited) >= 5
    assert not [c for c in cited if c[1] not in sections], sorted(c for c in cited if c[1] not in sections)
    assert not [path for folder in ("harness", "plugins") for path in (ROOT / folder).rglob("*.py")
                if "REFERENCE.md" in path.read_text()]


def test_the_scaffolds_and_the_examples_import_the_harness_through_its_api_only(tmp_path: Path) -> None:
    from harness.kits.scaffold import new_strategy_package
    from harness.kits.scaffold_dataset import new_dataset_package

    written = new_strategy_package("probe-strategy", tmp_path / "strategy") + \
        new_dataset_package("probe-dataset", tmp_path / "dataset")
    sources = [path for path in written if path.suffix == ".py"] + sorted(
        path for path in (ROOT / "examples").rglob("*.py") if "build" not in path.parts)
    imports = {path: {node.module for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness")}
               for path in sources}
    assert len(sources) >= 6 and all(imports.values()), imports
    assert all(modules == {"harness.api"} for modules in imports.values()), imports
