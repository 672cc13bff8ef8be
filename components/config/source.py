"""Reads every key of the project's config namespace, with its secret flag.

``pulumi.Config`` answers only for keys you name, so it cannot tell a misspelt top-level key (``ml-observability:
monitorng``) from an absent one. The SDK keeps the whole map in ``pulumi.runtime.config``: set by
``set_all_config`` (mocks, component providers) or passed by the language host in ``PULUMI_CONFIG`` and
``PULUMI_CONFIG_SECRET_KEYS``. That is an internal API, so this module is the only place that touches it; its
test pins the behaviour so that an SDK upgrade that moves it fails loudly instead of silently accepting typos.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pulumi.runtime import config as runtime_config


@dataclass(frozen=True)
class RawSetting:
    """One top-level key of the project's namespace as the engine passed it."""

    value: Any
    """Parsed JSON for structured values (maps, lists, numbers, booleans), the raw string otherwise."""
    secret: bool
    """True when the key, or any value under it, was set with ``pulumi config set --secret``."""


def read_project_settings(project: str) -> dict[str, RawSetting]:
    """Return ``{key without namespace: RawSetting}`` for every ``<project>:<key>`` the engine passed.

    Keys of other namespaces (``kubernetes:context``, ``aws:region``, ``pulumi:disable-default-providers``)
    are not the project's to judge and are left out.
    """
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())

    prefix = f"{project}:"
    settings: dict[str, RawSetting] = {}
    for full_key, raw in merged.items():
        if not full_key.startswith(prefix):
            continue
        settings[full_key[len(prefix) :]] = RawSetting(value=_parse(raw), secret=full_key in secret_keys)
    return settings


def _parse(raw: Any) -> Any:
    """Structured config reaches the program as JSON text; plain strings stay strings."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
