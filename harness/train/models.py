"""Backbones as the harness sees them, and resolution of backbone names to providers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from harness.errors import ConfigError, PluginError
from harness.hooks.registry import Registry, unknown_name_message
from harness.hooks.specs import BackboneSpec

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A network whose last layer has one output per class, and the normalisation it expects."""

    model: "nn.Module"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class BackboneRef:
    """A resolved backbone name: ``provider:architecture``."""

    provider: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.architecture}"


def resolve_backbone(registry: Registry, name: str) -> BackboneRef:
    """Resolve ``provider:architecture`` or a provider's alias (``tiny``, ``swin-b``) to a reference."""
    providers = registry.all("backbone")
    if ":" in name:
        provider, architecture = name.split(":", 1)
        registry.get("backbone", provider)
        return BackboneRef(provider, architecture)
    aliases = {alias: BackboneRef(p, arch) for p, reg in providers.items() for alias, arch in reg.spec.aliases.items()}
    if name in aliases:
        return aliases[name]
    message = unknown_name_message("backbone", name, sorted(aliases))
    raise PluginError(f"{message} Or name one as provider:architecture, e.g. timm:resnet18 "
                      f"(providers: {', '.join(providers)}).")


def build_backbone(registry: Registry, ref: BackboneRef, num_outputs: int, options: Mapping[str, Any]) -> Backbone:
    spec = registry.get("backbone", ref.provider)
    assert isinstance(spec, BackboneSpec)
    backbone = spec.factory(ref.architecture, num_outputs, options)
    if not isinstance(backbone, Backbone):
        raise PluginError(f"backbone provider '{ref.provider}' returned {type(backbone).__name__}, expected a Backbone")
    return backbone


def check_input_size(backbone: Backbone, ref: BackboneRef, size: int) -> None:
    """Fail early, and clearly, when ``backbone`` cannot take ``size`` x ``size`` images (its strides or a fixed
    input size need more), instead of with the network's own error in the middle of a run."""
    import torch

    model = backbone.model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, size, size))
    except (RuntimeError, AssertionError, ValueError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"backbone {ref} cannot take {size}x{size} images ({first_line}); set image_size to "
                          f"a size it accepts (e.g. 224 for ImageNet models)") from None


def check_backbones(registry: Registry, names: Iterable[str], options: Mapping[str, Mapping[str, Any]],
                    size: int) -> None:
    """Every backbone in ``names`` builds (with its ``options``) and takes ``size`` x ``size`` images."""
    for name in names:
        ref = resolve_backbone(registry, name)
        check_input_size(build_backbone(registry, ref, 2, options.get(name, {})), ref, size)
