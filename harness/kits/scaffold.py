"""``bench new-strategy NAME DIR``: a pip-installable strategy package that passes the conformance kit, and
what every scaffold shares (name rules, the ``pyproject.toml``, writing the files).

The package registers one working strategy (the mean of the ``k`` best-validation checkpoints) through the
``sdbench`` entry-point group, and tests it with :class:`harness.kits.conformance.StrategyConformance`; its
author replaces the strategy's body and keeps the tests. Dataset packages: :mod:`harness.kits.scaffold_dataset`.

Templates are :class:`string.Template` strings: ``$name`` (the plugin's name), ``$module`` (its Python
module), ``$cls`` (its class) and the scaffold's own fields; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Iterable, Mapping

from harness.errors import SdbenchError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sdbench-$name"
version = "0.1.0"
description = "$description"
requires-python = ">=3.10"
dependencies = [$dependencies]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points.sdbench]
$module = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
''')

MODULE = Template('''\
"""The '$name' teacher strategy: the mean of the k checkpoints with the best validation score.

Replace the body of ``select`` with your own rule; ``pytest`` runs the sdbench conformance tests on it.
"""

from __future__ import annotations

from harness.api import Checkpoint, Selection, Strategy, StrategySpec, Teachers, hookimpl


class $cls(Strategy):
    """Mean of the probabilities of the ``k`` best-validation epochs of the teacher of the same seed."""

    def __init__(self, k: int = 3) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = int(k)

    def select(self, teachers: Teachers, seed: int) -> Selection:
        history = teachers[seed]
        best = sorted(history.epochs, key=lambda e: (-history.val_score(e), e))[:self.k]
        return Selection(tuple(Checkpoint(seed, e) for e in sorted(best)),
                         note=f"{len(best)} best validation epochs")


@hookimpl
def sdbench_strategies() -> list[StrategySpec]:
    return [StrategySpec("$name", "Mean of the k best-validation checkpoints (parameter k)", $cls)]
''')

TESTS = Template('''\
"""The sdbench conformance tests, run on the '$name' strategy with its default and other parameters."""

from harness.api import StrategyConformance


class Test$cls(StrategyConformance):
    strategy_name = "$name"


class Test${cls}SingleCheckpoint(StrategyConformance):
    strategy_name = "$name"
    params = {"k": 1}
''')

README = Template('''\
# sdbench-$name

A teacher strategy for sdbench. Install it next to sdbench and it appears in `bench plugins`:

    pip install -e .
    bench plugins
    bench run --strategies $name,best-val

Test it (the sdbench conformance tests): `pytest`. Parameters come from the run config:

    strategy_params:
      $name: {k: 2}
''')


def module_name(name: str) -> str:
    return "sdbench_" + name.replace("-", "_")


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def write_package(kind: str, name: str, directory: Path, taken: Iterable[str] | None,
                  templates: Mapping[str, Template], fields: Mapping[str, str]) -> list[Path]:
    """Write the package of the ``kind`` plugin ``name`` into ``directory`` (new or empty); return the files.

    ``templates`` maps each file's path relative to ``directory`` (itself a template) to its template, filled
    with ``name``, ``module``, ``cls`` and ``fields``. ``taken`` are the names of that kind already registered:
    reusing one would make both plugins fail to load."""
    if not NAME_PATTERN.fullmatch(name):
        raise SdbenchError(f"{kind} name '{name}' must be lowercase letters and digits, words joined by '-', "
                           f"starting with a letter (for example 'my-{kind}')")
    if taken and name in taken:
        raise SdbenchError(f"a {kind} named '{name}' is already registered; choose another name")
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise SdbenchError(f"{directory} is not empty: scaffold into a new directory")
    values = {"name": name, "module": module_name(name), "cls": class_name(name), **fields}
    written = []
    for relative, template in templates.items():
        path = directory / Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
        written.append(path)
    return written


def new_strategy_package(name: str, directory: Path, taken: list[str] | None = None) -> list[Path]:
    """Write the package for strategy ``name`` into ``directory`` (new or empty); return the files written."""
    templates = {"pyproject.toml": PYPROJECT, "$module/__init__.py": MODULE, "tests/test_$module.py": TESTS,
                 "README.md": README}
    fields = {"description": f"The '{name}' teacher strategy for sdbench", "dependencies": '"sdbench", "numpy"'}
    return write_package("strategy", name, directory, taken, templates, fields)
