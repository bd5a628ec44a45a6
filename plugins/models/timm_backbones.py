"""Any timm architecture by name, with local-only pretrained weights.

Options (``backbone_options.<backbone name>`` in the config):

- ``pretrained``: false (default) for random initialisation; true to load timm's default weights from the
  local Hugging Face cache (never downloaded at run time);
- ``weights``: a local ``.safetensors``/``.pth`` file with backbone weights (the classifier is re-initialised).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from harness.api import Backbone, BackboneSpec, ConfigError, hookimpl

ALIASES = {
    "tiny": "test_resnet",
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "convnext-t": "convnext_tiny",
    "efficientnet-b0": "efficientnet_b0",
    "vit-b": "vit_base_patch16_224",
    "swin-b": "swin_base_patch4_window7_224",
    "swin-l": "swin_large_patch4_window7_224",
}


def _offline_timm():
    """Import timm with the Hugging Face hub forced offline: nothing reaches the network at run time."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import huggingface_hub.constants
    import timm

    huggingface_hub.constants.HF_HUB_OFFLINE = True
    return timm


def build_timm(architecture: str, num_outputs: int, options: Mapping[str, Any]) -> Backbone:
    timm = _offline_timm()
    if not timm.list_models(architecture):
        close = timm.list_models(f"*{architecture.split('_')[0]}*")[:8]
        raise ConfigError(f"timm has no architecture '{architecture}'" + (f"; similar: {', '.join(close)}" if close else ""))
    unknown = set(options) - {"pretrained", "weights"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)} for timm:{architecture}; known: pretrained, weights")
    weights = options.get("weights")
    kwargs: dict[str, Any] = {"num_classes": num_outputs}
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"weights file for timm:{architecture} not found: {path}")
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    else:
        kwargs["pretrained"] = bool(options.get("pretrained", False))
    try:
        model = timm.create_model(architecture, **kwargs)
    except Exception as exc:  # noqa: BLE001 - hub and file errors come in many types; all mean "no local weights"
        if not kwargs["pretrained"]:
            raise
        raise ConfigError(
            f"could not load pretrained weights for timm:{architecture} without network ({type(exc).__name__}: {exc}). "
            f"Either download them once on a machine with network (python -c \"import timm; "
            f"timm.create_model('{architecture}', pretrained=True)\") and copy the Hugging Face cache "
            f"(~/.cache/huggingface) here, or set backbone_options.<backbone>.weights to a local "
            f".safetensors/.pth file."
        ) from exc
    config = timm.data.resolve_data_config({}, model=model)
    return Backbone(model=model, mean=tuple(config["mean"]), std=tuple(config["std"]))


@hookimpl
def sdbench_backbones() -> list[BackboneSpec]:
    return [BackboneSpec("timm", "Any timm architecture (timm:<name>), local pretrained weights only",
                         build_timm, aliases=ALIASES)]
