"""Reads the stack file into ``StackConfig`` and reports every problem at once, before any resource is declared.

A bad file fails with one message that lists each problem with its key path (as ``pulumi config set --path``
takes it), the value received and how to fix it; unknown keys are errors at every level, so that a typo is never
silently ignored, and a credential typed in clear is refused with the command that stores it encrypted. The
``modelDefaults`` section is validated on its own (its mistakes are named there, not once per model) and merged
under every model before the models are.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Union, get_args, get_origin

import pulumi
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from components.clusters.config import CLUSTER_MODELS
from components.config.source import RawSetting, read_project_settings
from components.config.stack import SECTIONS, StackConfig
from components.contracts import PROJECT
from components.model.config import ModelConfig
from components.monitoring.stores.config import STORE_MODELS

MODEL_DEFAULTS = "modelDefaults"
UNIONS: dict[str, Mapping[str, type[BaseModel]]] = {
    "cluster": {str(kind): model for kind, model in CLUSTER_MODELS.items()},
    "remoteWrite": {str(kind): model for kind, model in STORE_MODELS.items()},
}
"""Settings that hold one of several models, told apart by their ``kind``: pydantic puts the kind into an error's
location, the stack file has no such key."""
RENAMED_SECTIONS = {
    "model": "the model section became models, one entry per model: move its settings under "
             "models.synthetic-classifier (or the model's own name), and model.registry to cluster.registry",
}


class ConfigError(pulumi.RunError):
    """Raised once, with every problem of a stack file, before any resource is declared.

    A ``RunError`` so that the CLI prints the message alone, without a Python traceback.
    """

    def __init__(self, stack_file: str, problems: list[str]) -> None:
        self.stack_file = stack_file
        self.problems = problems
        noun = "setting" if len(problems) == 1 else "settings"
        super().__init__(f"{stack_file}: {len(problems)} invalid {noun}\n" + "\n".join(f"  {p}" for p in problems))


def load_stack_config(project: str | None = None, stack: str | None = None) -> StackConfig:
    """Read and validate the current stack's configuration, or raise one ``ConfigError`` listing every problem."""
    project = project or pulumi.get_project()
    stack = stack or pulumi.get_stack()
    return validate_settings(read_project_settings(project), project=project, stack=stack)


def validate_settings(settings: Mapping[str, RawSetting], *, project: str = PROJECT, stack: str) -> StackConfig:
    """Validate the raw settings of one stack; pure, so that every rule can be tested without an engine."""
    stack_file = f"stacks/Pulumi.{stack}.yaml"
    problems = [
        _problem(project, key, "unknown setting", setting.value, setting.secret,
                 RENAMED_SECTIONS.get(key, f"remove it or correct its name; the settings are {', '.join(SECTIONS)}"))
        for key, setting in sorted(settings.items())
        if key not in SECTIONS
    ]
    document = {key: setting.value for key, setting in settings.items() if key in SECTIONS}
    secret_sections = {key for key, setting in settings.items() if setting.secret}

    defaults = document.get(MODEL_DEFAULTS)
    if defaults is not None:
        default_problems = _model_defaults_problems(project, defaults, secret_sections)
        problems += default_problems
        if not default_problems and isinstance(document.get("models"), dict):
            document["models"] = {
                name: deep_merge(defaults, model) if isinstance(model, dict) else model
                for name, model in document["models"].items()
            }
    try:
        config = StackConfig.model_validate(document, by_name=False)
    except ValidationError as error:
        problems += [_describe(project, e, secret_sections) for e in error.errors()]
        raise ConfigError(stack_file, problems) from None
    problems += [
        _problem(project, path, "credential stored in plain text", None, True,
                 f"remove it from the stack file and set it encrypted: pulumi config set --secret --path '{path}' "
                 "<value>", show_value=False)
        for path, _ in _secrets(config) if path.split(".", 1)[0] not in secret_sections
    ]
    problems += [f"{project}:{path}: {problem}" for path, problem in config.problems()]
    if problems:
        raise ConfigError(stack_file, problems)
    return config


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: maps merge key by key, anything else (lists included) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _model_defaults_problems(project: str, defaults: Any, secret_sections: set[str]) -> list[str]:
    if isinstance(defaults, dict) and "external" in defaults:
        return [_problem(project, f"{MODEL_DEFAULTS}.external", "not a default", defaults["external"], False,
                         "an external model names its own Service: set external under that model")]
    try:
        ModelConfig.model_validate(defaults, by_name=False)
    except ValidationError as error:
        return [_describe(project, e, secret_sections, prefix=(MODEL_DEFAULTS,)) for e in error.errors()]
    return []


def _secrets(model: BaseModel, path: str = "") -> Iterator[tuple[str, SecretStr]]:
    """Every secret value set in ``model``, with its key path."""
    for name, info in type(model).model_fields.items():
        key = f"{path}.{info.alias or name}" if path else info.alias or name
        yield from _secret_values(getattr(model, name), key)


def _secret_values(value: Any, path: str) -> Iterator[tuple[str, SecretStr]]:
    if isinstance(value, SecretStr):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from _secrets(value, path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_values(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _secret_values(item, f"{path}[{index}]")


def _without_kinds(location: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """The location without the kinds pydantic inserts after a union setting (``cluster.eks.region`` →
    ``cluster.region``), and the kind chosen for each such setting."""
    kept: list[Any] = []
    kinds: dict[str, str] = {}
    setting: str | None = None
    for part in location:
        if setting is not None and isinstance(part, str) and part in UNIONS[setting] and setting not in kinds:
            kinds[setting] = part
            continue
        kept.append(part)
        if isinstance(part, str):
            setting = part if part in UNIONS else None
    return kept, kinds


def _describe(project: str, error: Any, secret_sections: set[str], prefix: tuple[str, ...] = ()) -> str:
    """Turn one pydantic error into ``<project>:<key path>: <problem> (got <value>); <how to fix>``."""
    location = [*prefix, *error["loc"]]
    if location[-1:] == ["[key]"]:  # a map's key (a model's or a team's name), not a setting
        path = _key_path(location[:-1])
        return (f"{project}:{path}: not a valid name (got {error.get('input')!r}); names are DNS labels: lowercase "
                f"letters, digits and '-', starting and ending with a letter or digit ({error['msg']}); rename it")
    location, kinds = _without_kinds(location)
    path = _key_path(location)
    kind = error["type"]
    value = error.get("input")
    secret = bool(location) and (location[0] in secret_sections or isinstance(value, SecretStr))
    info = _field_for(location, kinds)

    if kind == "missing":
        return _problem(project, path, "required setting is missing", None, secret,
                        f"set it: pulumi config set --path '{path}' <value>{_example(info)}", show_value=False)
    if kind == "extra_forbidden":
        return _problem(project, path, "unknown setting", value, secret,
                        f"remove it or correct its name; allowed here: {_allowed_keys(location[:-1], kinds)}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = error.get("ctx", {}).get("tag")
        union = next((part for part in reversed(location) if isinstance(part, str) and part in UNIONS), "cluster")
        problem = "unknown kind" if kind == "union_tag_invalid" else "kind is missing"
        return _problem(project, f"{path}.kind", problem, tag, secret,
                        f"set {path}.kind to one of {', '.join(UNIONS[union])}",
                        show_value=kind == "union_tag_invalid")
    message = error["msg"].removeprefix("Value error, ")
    if kind == "value_error":  # a check of the setting or across fields: its message names them and the values
        return f"{project}:{path}: {message}; correct those settings in {path}"
    hint = f"{info.description} " if info is not None and info.description else ""
    return _problem(project, path, message, value, secret,
                    f"{hint}Set a valid value: pulumi config set --path '{path}' <value>{_example(info)}")


def _problem(project: str, path: str, problem: str, value: Any, secret: bool, fix: str,
             *, show_value: bool = True) -> str:
    got = ""
    if show_value:
        got = " (got [secret])" if secret else f" (got {value!r})"
    return f"{project}:{path}: {problem}{got}; {fix}"


def _key_path(location: Iterable[Any]) -> str:
    """``['cluster', 'subnetIds', 0]`` → ``cluster.subnetIds[0]``, the form ``pulumi config set --path`` takes."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path


def _model_type(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The config model an annotation holds (``Model``, ``Model | None``, ``dict[str, Model]``), and whether a
    map's key comes first in a location."""
    origin = get_origin(annotation)
    if origin in (dict, Mapping):
        inner, _ = _model_type(get_args(annotation)[1])
        return inner, True
    if origin in (Union, types.UnionType):
        for option in get_args(annotation):
            found, keyed = _model_type(option)
            if found is not None:
                return found, keyed
        return None, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def _model_at(location: list[Any], kinds: Mapping[str, str]) -> type[BaseModel] | None:
    """The config model a key path points into, following the kind of each union setting and maps of models."""
    model: type[BaseModel] | None = StackConfig
    parts = [part for part in location if not isinstance(part, int)]
    if parts[:1] == [MODEL_DEFAULTS]:
        model, parts = ModelConfig, parts[1:]
    index = 0
    while index < len(parts):
        part = parts[index]
        if model is None:
            return None
        info = _fields(model).get(part)
        if info is None:
            return None
        if part in UNIONS:
            model = UNIONS[part].get(kinds.get(part, ""))
        else:
            model, keyed = _model_type(info.annotation)
            index += keyed  # the next part is a map key (a model's name, a team's), not a field
        index += 1
    return model


def _field_for(location: list[Any], kinds: Mapping[str, str]) -> FieldInfo | None:
    if not location or isinstance(location[-1], int):
        return None
    parent = _model_at(location[:-1], kinds)
    return _fields(parent).get(location[-1]) if parent is not None else None


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key a stack file uses (the camelCase alias)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _example(info: FieldInfo | None) -> str:
    if info is not None and info.examples:
        return f" (for example {info.examples[0]!r})"
    return ""


def _allowed_keys(location: list[Any], kinds: Mapping[str, str]) -> str:
    model = _model_at(location, kinds)
    if model is None:
        return "see the section's types in components/"
    return ", ".join(_fields(model)) or "none"
