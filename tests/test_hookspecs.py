"""Every hook of ``harness/hookspecs.py`` is documented and tested (the rule datasette keeps for its hooks): a
new hook without a docstring that says what it returns, or that no test module names, fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from harness.hooks import hookspecs

TESTS = Path(__file__).resolve().parent
HOOKS = [name for name, function in vars(hookspecs).items()
         if inspect.isfunction(function) and hasattr(function, "sdbench_spec")]
OTHER_TEST_MODULES = {path.name: path.read_text() for path in sorted(TESTS.glob("test_*.py"))
                      if path.name != Path(__file__).name}


def test_the_hooks_are_found():
    assert {"sdbench_datasets", "sdbench_strategies", "sdbench_window_rules"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str):
    function = getattr(hookspecs, hook)
    spec = re.fullmatch(r"list\[(\w+)\]", function.__annotations__.get("return", ""))
    assert spec, f"hook {hook} must be annotated to return a list of its spec, e.g. -> list[DatasetSpec]"
    summary, _, body = (inspect.getdoc(function) or "").partition("\n\n")
    assert summary.startswith("Return ") and summary.endswith("."), \
        f"hook {hook}: the docstring's first line must say what it returns ('Return the ... this plugin provides.')"
    assert spec[1] in body and "factory" in body and len(body) > 80, \
        f"hook {hook}: the docstring must say, after its first line, what a {spec[1]} holds and what its factory builds"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_tested(hook: str):
    assert [name for name, text in OTHER_TEST_MODULES.items() if re.search(rf"\b{hook}\b", text)], \
        f"hook {hook} is named by no test module under tests/: add a test that implements it in a plugin"
