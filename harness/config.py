"""Run configuration: built-in defaults (the demo), overlaid by a YAML file, overlaid by ``--set KEY=VALUE``
arguments, overlaid by the dedicated command-line flags (``--seeds``, ``--device``, ...).

Every value is checked against a pydantic v2 schema (pydantic is a dependency for this) before any job starts,
instead of hand-written checks scattered where the values are used; its ValidationError becomes one
ConfigError with a line per problem, naming the source, the dotted key, what was expected and what was found.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from harness.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "datasets": ["all"],
    "strategies": ["all"],
    "backbones": ["tiny"],
    "seeds": [0, 1, 2],
    "image_size": 48,
    "device": "auto",
    "precision": "auto",
    "teacher": {"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-6, "eta_min": 2e-4,
                "augment": False, "eval_batch_size": 256},
    "student": {"epochs": 12, "batch_size": 32, "lr": 2e-3, "weight_decay": 1e-6, "eta_min": 2e-4,
                "augment": False, "eval_batch_size": 256},
    "distill": {"alpha": 1.0},
    "dataset_options": {},
    "backbone_options": {},
    "strategy_params": {},
    "executor": "local",
    "executor_options": {},
    "rerun": "failed",
    "loggers": [],
    "logger_options": {},
}

Rerun = Literal["never", "failed", "all"]
RERUN_POLICIES: tuple[str, ...] = get_args(Rerun)
"""Which jobs a run retries: ``never`` keeps earlier failures as they are, ``failed`` (default) retries failed
and interrupted jobs, ``all`` recomputes every job, finished ones included."""

Precision = Literal["auto", "bf16", "fp16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class FitSettings:
    """How one teacher or student is trained."""

    epochs: int
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 1e-6
    eta_min: float = 2e-5
    augment: bool = True
    eval_batch_size: int = 128


@dataclass(frozen=True)
class RunConfig:
    datasets: tuple[str, ...]
    strategies: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    image_size: int
    device: str
    teacher: FitSettings
    student: FitSettings
    distill_alpha: float
    dataset_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    backbone_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    strategy_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    executor: str = "local"
    executor_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rerun: str = "failed"
    precision: str = "auto"
    loggers: tuple[str, ...] = ()
    logger_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["distill"] = {"alpha": data.pop("distill_alpha")}
        return data


# -- the schema ---------------------------------------------------------------------------------------------

def _reject_bool(value: Any) -> Any:
    """YAML reads ``yes``/``true`` as booleans, and pydantic would take them for 1."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


def _split_commas(value: Any) -> Any:
    """``"a, b"`` (as the command line gives lists) is ``["a", "b"]``."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


_NotBool = BeforeValidator(_reject_bool)
# int | float keeps an integer an integer (``weight_decay: 0`` stays 0): job keys hash these values, and
# JSON writes 0 and 0.0 differently. Strings (from the command line) become the number they spell.
_Number = Annotated[int | Annotated[float, Field(allow_inf_nan=False)], _NotBool]
_Names = Annotated[tuple[Annotated[str, Field(min_length=1)], ...], BeforeValidator(_split_commas),
                   Field(min_length=1, description="a non-empty list of names (or a comma-separated string)")]
_Options = Annotated[dict[str, dict[str, Any]], BeforeValidator(_none_is_empty),
                     Field(description="a mapping of name -> mapping of settings")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Fit(_Section):
    epochs: Annotated[int, _NotBool, Field(ge=1, description="an integer >= 1")]
    batch_size: Annotated[int, _NotBool, Field(ge=2, description="an integer >= 2")]
    lr: Annotated[_Number, Field(gt=0, description="a finite number > 0")]
    weight_decay: Annotated[_Number, Field(ge=0, description="a finite number >= 0")]
    eta_min: Annotated[_Number, Field(ge=0, description="a finite number >= 0")]
    augment: Annotated[bool, Field(description="true or false")]
    eval_batch_size: Annotated[int, _NotBool, Field(ge=1, description="an integer >= 1")]


class _Distill(_Section):
    alpha: Annotated[float, _NotBool, Field(ge=0, le=1, allow_inf_nan=False, description="a number in [0, 1]")]


class _Schema(_Section):
    datasets: _Names
    strategies: _Names
    backbones: _Names
    seeds: Annotated[tuple[Annotated[int, _NotBool, Field(ge=0)], ...], BeforeValidator(_split_commas),
                     Field(min_length=1, description="a non-empty list of integers >= 0 (or a comma-separated "
                                                     "string)")]
    image_size: Annotated[int, _NotBool, Field(ge=8, description="an integer >= 8")]
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$",
                                 description="one of auto, cpu, cuda, cuda:N, mps")]
    precision: Annotated[Precision, Field(description=f"one of {', '.join(PRECISIONS)}")]
    teacher: Annotated[_Fit, Field(description="a mapping of fit settings")]
    student: Annotated[_Fit, Field(description="a mapping of fit settings")]
    distill: Annotated[_Distill, Field(description="a mapping of distillation settings")]
    dataset_options: _Options
    backbone_options: _Options
    strategy_params: _Options
    executor: Annotated[str, Field(min_length=1, description="an executor name")]
    executor_options: _Options
    rerun: Annotated[Rerun, Field(description=f"one of {', '.join(RERUN_POLICIES)}")]
    loggers: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], BeforeValidator(_split_commas),
                       Field(description="a list of logger names (or a comma-separated string)")]
    logger_options: _Options


def _problem(error: Mapping[str, Any], data: Mapping[str, Any], where: str) -> str:
    """One line for one pydantic error: the deepest schema key on its location, and the value found there."""
    fields, path, found, expected = _Schema.model_fields, [], data, ""
    for part in error["loc"]:
        if part not in fields:
            break
        path.append(part)
        found, expected, model = found[part], fields[part].description, fields[part].annotation
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
    if error["type"] == "extra_forbidden":
        prefix = "".join(f"{p}." for p in path)
        key, known = error["loc"][len(path)], list(fields)
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return f"{where}: unknown key '{prefix}{key}'{hint}"
    return f"{where}: {'.'.join(path)}: expected {expected}, found {found!r}"


def _validate(data: Mapping[str, Any], where: str) -> _Schema:
    try:
        return _Schema.model_validate(data)
    except ValidationError as exc:
        problems = dict.fromkeys(_problem(error, data, where) for error in exc.errors())
        raise ConfigError("\n".join(problems)) from None


# -- reading --------------------------------------------------------------------------------------------------

_FLOAT_TAG = "tag:yaml.org,2002:float"
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                                 |\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
                                 |[0-9][0-9_]*[eE][-+]?[0-9]+
                                 |\.(?:inf|Inf|INF))
                       |\.(?:nan|NaN|NAN))$""", re.X)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats. PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent,
    so it reads ``1e-3`` as the string "1e-3"; here ``1e-3``, ``1E5``, ``.5`` and ``-2.5e-4`` are floats (quoted,
    they stay strings) and integers stay integers."""

    yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in resolvers if tag != _FLOAT_TAG]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in the YAML file at ``path``, checked over the defaults."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=_Loader) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    _validate(_merge(DEFAULTS, data), str(path))
    return dict(data)


def parse_setting(text: str) -> dict[str, Any]:
    """One ``--set KEY=VALUE`` as the mapping it overlays: ``teacher.epochs=40`` is ``{"teacher": {"epochs": 40}}``.
    VALUE is YAML read as a config file is, so ``1e-3`` is a float, ``[0]`` a list and ``{a: 1}`` a mapping."""
    key, sep, raw = text.partition("=")
    parts = [part.strip() for part in key.split(".")]
    if not sep or not all(parts):
        raise ConfigError(f"--set '{text}': expected KEY=VALUE with a dotted KEY, e.g. teacher.epochs=40")
    try:
        value = yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set '{text}': VALUE is not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    for part in reversed(parts):
        value = {part: value}
    return value


def _apply_settings(data: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """``data`` overlaid by ``settings`` in order (a later one wins). Each is checked over ``data`` on its own,
    as a config file is, so that every problem is listed under the argument that caused it."""
    overlays = [(text, parse_setting(text)) for text in settings]
    problems = []
    for text, overlay in overlays:
        try:
            _validate(_merge(data, overlay), f"--set '{text}'")
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    for _, overlay in overlays:
        data = _merge(data, overlay)
    return data


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None,
                settings: Sequence[str] = ()) -> RunConfig:
    """Defaults, then the YAML file at ``path``, then ``settings`` (``--set KEY=VALUE`` arguments), then
    ``overrides`` (the other command-line flags, already parsed)."""
    data = copy.deepcopy(DEFAULTS)
    if path is not None:
        data = _merge(data, read_config_file(path))
    data = _apply_settings(data, settings)
    # the file and the settings were checked above: what fails now came from the other flags
    values = _validate(_merge(data, overrides or {}), "command line").model_dump()
    distill = values.pop("distill")
    return RunConfig(**values | {"teacher": FitSettings(**values["teacher"]),
                                 "student": FitSettings(**values["student"]), "distill_alpha": distill["alpha"]})
