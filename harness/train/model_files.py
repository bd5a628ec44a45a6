"""A student's model files: its weights and its model card, written when it finishes and read by
``bench export`` and ``bench predict`` (:mod:`harness.students`).

A student's artifact directory (``<run>/jobs/student/<key>/``) holds ``model.safetensors``, its
``state_dict`` (weights only), and ``model.json``, its :class:`ModelCard`. The weights load with timm alone::

    cfg = json.load(open("model.json"))
    model = timm.create_model(cfg["architecture"], num_classes=cfg["num_classes"], pretrained=False)
    model.load_state_dict(safetensors.torch.load_file("model.safetensors")); model.eval()

These arguments are all it takes: the timm provider builds every backbone with
``timm.create_model(architecture, num_classes=..., pretrained=...)`` and no other keyword (no ``in_chans``,
no drop rates), and ``pretrained`` only chose the weights training started from. The model takes RGB frames
resized (squashed, bilinear) to ``image_size`` x ``image_size``, scaled to [0, 1] and normalised with
``mean`` and ``std``, as float (B, 3, H, W); it returns logits, which ``activation`` (``sigmoid`` for
multi-label tasks, ``softmax`` for multi-class ones) turns into probabilities in the order of
``class_names``. ``bench predict`` (:mod:`harness.students.predict`) does all of this for a video or a folder of
frames, for backbones of any provider.

Strategies whose soft labels are identical share one student; its card names the strategy of the job that
trained it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.errors import SdbenchError
from harness.hooks.registry import Registry
from harness.system.atomic import write_json, write_with
from harness.train.models import Backbone, BackboneRef, build_backbone

if TYPE_CHECKING:
    from torch import nn

MODEL_WEIGHTS = "model.safetensors"
MODEL_CARD = "model.json"
ACTIVATIONS = {"multilabel": "sigmoid", "multiclass": "softmax"}


@dataclass(frozen=True)
class ModelCard:
    """What ``model.json`` says about a student: how to build, feed and read it, and where it came from."""

    backbone: str
    """The backbone as the run's config named it (an alias such as ``tiny``, or ``provider:architecture``)."""
    provider: str
    architecture: str
    """The provider's architecture name; for the timm provider, timm's model name."""
    num_classes: int
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    task: str
    dataset: str
    split: str
    strategy: str
    seed: int
    job_key: str
    sdbench_version: str = __version__

    @property
    def activation(self) -> str:
        return ACTIVATIONS[self.task]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"activation": self.activation}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> "ModelCard":
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise SdbenchError(f"{where} lacks {', '.join(missing)}: expected a model card written by sdbench")
        if data["task"] not in ACTIVATIONS:
            raise SdbenchError(f"{where}: task is {data['task']!r}, expected one of {', '.join(ACTIVATIONS)}")
        if len(data["class_names"]) != data["num_classes"]:
            raise SdbenchError(f"{where}: {len(data['class_names'])} class names for num_classes "
                               f"{data['num_classes']}; expected one name per class")
        values = {name: data[name] for name in names}
        return cls(**values | {key: tuple(values[key]) for key in ("class_names", "mean", "std")})


def save_model(directory: Path, model: "nn.Module", card: ModelCard) -> None:
    """Write ``model``'s weights (contiguous CPU tensors) and then ``card`` into ``directory``, each atomically."""
    from safetensors.torch import save

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    write_with(Path(directory) / MODEL_WEIGHTS, lambda handle: handle.write(save(state)))
    write_json(Path(directory) / MODEL_CARD, card.to_json())


def check_model_files(directory: Path) -> None:
    """Raise an :class:`SdbenchError` saying what is missing unless ``directory`` holds both model files."""
    directory = Path(directory)
    missing = [name for name in (MODEL_CARD, MODEL_WEIGHTS) if not (directory / name).is_file()]
    if not missing:
        return
    expected = "expected a directory written by 'bench export' or a student's artifact directory " \
               "(<run>/jobs/student/<key>)"
    if not directory.is_dir():
        raise SdbenchError(f"model directory {directory} not found: {expected}")
    raise SdbenchError(f"{directory} has no {' or '.join(missing)}: {expected}")


def read_card(directory: Path) -> ModelCard:
    check_model_files(directory)
    path = Path(directory) / MODEL_CARD
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SdbenchError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SdbenchError(f"{path} holds {type(data).__name__}, expected a JSON object (a model card)")
    return ModelCard.from_json(data, path)


def load_model(directory: Path, registry: Registry) -> tuple[ModelCard, Backbone]:
    """The card and the eval-mode model of an exported (or a student's artifact) directory, on the CPU. The
    model is built by its backbone provider without pretrained weights, then given the stored ones."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = read_card(directory)
    path = Path(directory) / MODEL_WEIGHTS
    try:
        weights = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise SdbenchError(f"{path} cannot be read as a safetensors file: {exc}") from None
    backbone = build_backbone(registry, BackboneRef(card.provider, card.architecture), card.num_classes, {})
    try:
        backbone.model.load_state_dict(weights)
    except RuntimeError as exc:  # missing, unexpected or misshapen tensors
        problem = " ".join(line.strip() for line in str(exc).splitlines()[:2])  # "Error(s) ...:" and the first
        raise SdbenchError(f"{path} does not hold the weights of {card.provider}:{card.architecture} with "
                           f"{card.num_classes} classes: {problem}") from None
    return card, Backbone(backbone.model.eval(), card.mean, card.std)
