"""What every section of the stack file is made of: the base model and the value types several sections share.

Each section's types live beside the component that owns the section (``components/clusters/config.py``,
``components/monitoring/config.py``, ``components/model/config.py``, ``components/monitors/config.py``); this
module holds what they have in common, so that a DNS label, a duration or a memory quantity is checked by one
pattern everywhere.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, StringConstraints
from pydantic.alias_generators import to_camel

from components.monitors.rule_model import parse_duration


class Section(BaseModel):
    """Base of every config model: camelCase keys as in Pulumi stack files, no unknown keys, immutable.

    The stack file is read by alias only (``components/config/loader.py``), so ``long_window`` there is an unknown
    key; Python code that builds a section as a component's settings may use the field names.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_default=True,
        validate_by_alias=True,
        validate_by_name=True,
    )


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes object name of the strictest kind (RFC 1123 label): namespaces, Services, model names."""
KUBERNETES_MINOR = r"^1\.[0-9]{2}(\.[0-9]+)?$"
PROMETHEUS_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
"""A duration as Prometheus and Alertmanager parse it (``model.ParseDuration``): units largest first, each once;
the pattern the Prometheus CRD validates ``spec.retention`` with."""
CPU_QUANTITY = r"^(?:[0-9]+m|[0-9]+(?:\.[0-9]{1,3})?)$"
MEMORY_QUANTITY = r"^[0-9]+(?:Ki|Mi|Gi|Ti|k|M|G|T)?$"
LABEL_KEY = r"^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
PROMETHEUS_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
IMAGE_REFERENCE = (
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
REGISTRY_ADDRESS = r"^[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
_MEMORY_FACTORS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _window(value: str) -> str:
    if parse_duration(value) <= 0:  # parse_duration refuses what is no Prometheus duration, units out of order too
        raise ValueError(f"must be a duration longer than 0 (got {value!r})")
    return value


DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]
Duration = Annotated[str, StringConstraints(pattern=PROMETHEUS_DURATION, min_length=1)]
"""A Prometheus duration, ``0`` included (a retention of 0 means the server's default)."""
Window = Annotated[str, AfterValidator(_window)]
"""A duration rules and Alertmanager wait for or look back over: never 0."""
PrometheusLabelName = Annotated[str, StringConstraints(pattern=PROMETHEUS_LABEL_NAME)]


def label_problems(labels: dict[str, str]) -> str | None:
    """Why ``labels`` are not Kubernetes labels, or ``None``."""
    for key, value in labels.items():
        if not re.match(LABEL_KEY, key):
            return f"{key!r} is not a Kubernetes label key ([prefix/]name, name up to 63 characters)"
        if not re.match(LABEL_VALUE, value):
            return f"{value!r} (of {key!r}) is not a Kubernetes label value (up to 63 characters)"
    return None


def cpu_millicores(quantity: str) -> float:
    """``"250m"`` → 250, ``"1.5"`` → 1500: CPU quantities compared across fields."""
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def memory_bytes(quantity: str) -> int:
    """``"512Mi"`` → 536870912: memory quantities compared across fields."""
    match = re.fullmatch(r"([0-9]+)([A-Za-z]*)", quantity)
    assert match is not None  # guaranteed by MEMORY_QUANTITY
    return int(match.group(1)) * _MEMORY_FACTORS[match.group(2)]


def http_url(value: SecretStr | None) -> SecretStr | None:
    """A URL read only when it is used (Alertmanager's ``*_file``, a remote-write endpoint): check its form now."""
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value.get_secret_value().strip()):
        raise ValueError("must be an http(s) URL")
    return value
