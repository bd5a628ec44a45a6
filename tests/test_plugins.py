"""Plugin discovery, isolation of broken plugins, name clashes and lookups."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.errors import PluginError
from harness.hooks.registry import BUILTIN_PLUGINS, Registry

ROOT = Path(__file__).resolve().parent.parent


def fake_distribution(directory: Path, name: str, modules: dict[str, str]) -> None:
    """Install, by files alone, a distribution ``name`` whose sdbench entry points are ``modules``."""
    info = directory / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sdbench]\n" + "".join(f"{module} = {module}\n" for module in modules))
    for module, source in modules.items():
        (directory / f"{module}.py").write_text(textwrap.dedent(source))


GOOD = """
    from harness.api import StrategySpec, hookimpl
    from plugins.strategies.baselines import Last

    @hookimpl
    def sdbench_strategies():
        return [StrategySpec("good-one", "a working third-party strategy", Last)]
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_register_through_the_hooks():
    registry = Registry(entry_points=False)
    assert len(registry.names("dataset")) >= 2
    assert registry.names("backbone") == ["timm"]
    assert registry.names("strategy") == ["hard", "last", "best-val", "it", "iee", "iese", "iese-weighted",
                                          "iese-sharpened", "iese-calibrated", "mi-checkpoint", "early-stopped",
                                          "iee-logits", "iese-logits"]
    assert all(reg.provider.distribution == "sdbench" for reg in registry.all("strategy").values())


def test_broken_plugin_costs_a_warning_naming_it(site: Path, caplog: pytest.LogCaptureFixture):
    fake_distribution(site, "broken-dist", {"broken_plugin": "raise RuntimeError('boom at import')"})
    fake_distribution(site, "good-dist", {"good_plugin": GOOD})
    with caplog.at_level(logging.WARNING, logger="sdbench"):
        registry = Registry(strict=False)
    assert "good-one" in registry.names("strategy")
    assert "iese" in registry.names("strategy")
    [problem] = registry.problems
    assert "broken_plugin" in problem and "broken-dist" in problem and "boom at import" in problem
    assert "broken_plugin" in caplog.text


def test_strict_mode_makes_a_broken_plugin_fatal(site: Path, monkeypatch: pytest.MonkeyPatch):
    fake_distribution(site, "broken-dist", {"broken_plugin": "raise RuntimeError('boom at import')"})
    with pytest.raises(PluginError, match="broken_plugin.*boom at import"):
        Registry(strict=True)
    monkeypatch.setenv("SDBENCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="boom at import"):
        Registry()


def test_failing_hook_is_isolated(site: Path):
    fake_distribution(site, "hook-dist", {"hook_plugin": """
        from harness.api import hookimpl

        @hookimpl
        def sdbench_strategies():
            raise ValueError("bad hook")
    """})
    registry = Registry(strict=False)
    assert "hard" in registry.names("strategy")
    assert any("bad hook" in p and "hook-dist" in p for p in registry.problems)


def test_hook_returning_wrong_type_is_reported(site: Path):
    fake_distribution(site, "type-dist", {"type_plugin": """
        from harness.api import hookimpl

        @hookimpl
        def sdbench_strategies():
            return ["not a spec"]
    """})
    registry = Registry(strict=False)
    assert any("expected a StrategySpec" in p for p in registry.problems)


def test_duplicate_name_fails_naming_both_providers(site: Path):
    fake_distribution(site, "clash-dist", {"clash_plugin": GOOD.replace("good-one", "best-val")})
    with pytest.raises(PluginError) as error:
        Registry()
    message = str(error.value)
    assert "'best-val' is registered twice" in message
    assert "plugins.strategies.baselines (sdbench" in message and "clash_plugin (clash-dist 0.1)" in message


def test_third_party_backbones_and_executors_register_through_their_hooks(site: Path):
    fake_distribution(site, "infra-dist", {"infra_plugin": """
        from harness.api import Backbone, BackboneSpec, ExecutorSpec, hookimpl

        @hookimpl
        def sdbench_backbones():
            return [BackboneSpec("toy", "a third-party backbone provider",
                                 lambda architecture, outputs, options: Backbone((architecture, outputs)),
                                 aliases={"toy-small": "net-s"})]

        @hookimpl
        def sdbench_executors():
            return [ExecutorSpec("toy-cluster", "a third-party executor", lambda options: dict(options))]
    """})
    from harness.train.models import build_backbone, resolve_backbone

    registry = Registry()
    ref = resolve_backbone(registry, "toy-small")
    assert str(ref) == "toy:net-s" and registry.provider("backbone", "toy").distribution == "infra-dist"
    assert build_backbone(registry, ref, 3, {}).model == ("net-s", 3)
    assert registry.get("executor", "toy-cluster").factory({"device": "cpu"}) == {"device": "cpu"}
    assert registry.provider("executor", "toy-cluster").plugin == "infra_plugin"


def test_unknown_name_suggests_close_ones():
    registry = Registry(entry_points=False)
    with pytest.raises(PluginError, match=r"unknown strategy 'iees'; did you mean 'iee' or 'iese' or 'iee-logits'\?"
                                          r".*Available: hard"):
        registry.get("strategy", "iees")
    with pytest.raises(PluginError, match="unknown dataset 'nope'.*Available: demo-"):
        registry.get("dataset", "nope")


def test_listing_plugins_does_not_import_torch():
    code = ("import sys; from harness.cli import main; code = main(['plugins']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("demo-triplets", "demo-phases", "timm", "hard", "best-val", "iese"):
        assert name in result.stdout
    assert "sdbench 0.1.0" in result.stdout


def test_every_builtin_plugin_module_is_importable_without_torch():
    code = f"import sys, importlib; [importlib.import_module(m) for m in {list(BUILTIN_PLUGINS)!r}]; " \
           "assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
