"""Validation of Kubernetes objects the way the API server would judge them, without an API server.

- Built-in kinds (Deployment, Service, Secret…) against the OpenAPI schemas of a Kubernetes version
  (``kubernetes-validate``, strict: an unknown field is an error, where the API server would drop it silently).
- Custom resources (Prometheus, ServiceMonitor, PrometheusRule…) against the ``openAPIV3Schema`` of their CRD in
  the pinned chart copy. The API server prunes unknown fields of a structural schema without a word, so strict
  mode closes every object schema that does not preserve unknown fields: a misspelt field fails here instead.
- Label and namespace selectors evaluated as the Prometheus operator and the API server evaluate them.

Every function returns plain data or a list of error strings, so that a test can assert ``== []`` and show every
problem at once.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.tools import upstream_dir

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class _KubernetesYamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML 1.1's ``=`` "value" tag is plain text to Kubernetes (``- =`` in an enum of operators)."""


_KubernetesYamlLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def load_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML stream, read as Kubernetes reads them."""
    return [document for document in yaml.load_all(text, Loader=_KubernetesYamlLoader) if document]


def crd_folder() -> Path:
    """The CRDs of the pinned chart copy (``charts/crds/crds/``): the ones the release installs."""
    return upstream_dir() / "charts" / "kube-prometheus-stack" / "charts" / "crds" / "crds"


@functools.cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """``{(group, kind): CRD document}`` for every CRD of the chart copy."""
    crds = {}
    for path in sorted(crd_folder().glob("*.yaml")):
        for document in load_documents(path.read_text()):
            if document.get("kind") == "CustomResourceDefinition":
                spec = document["spec"]
                crds[(spec["group"], spec["names"]["kind"])] = document
    return crds


def crd_kinds() -> set[tuple[str, str]]:
    """``(group, kind)`` of every CRD the chart installs."""
    return set(_crds())


def is_custom_resource(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is of a kind the chart's CRDs define (``monitoring.coreos.com``)."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return (group, obj.get("kind")) in _crds()


@functools.cache
def crd_schema(api_version: str, kind: str, *, strict: bool = True) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``kind`` at ``api_version`` (``monitoring.coreos.com/v1``), closed if ``strict``."""
    group, _, version = api_version.rpartition("/")
    crd = _crds().get((group, kind))
    if crd is None:
        raise KeyError(f"no CRD for {kind} in group {group!r} in {crd_folder()}")
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = served["schema"]["openAPIV3Schema"]
            return _closed(copy.deepcopy(schema)) if strict else schema
    raise KeyError(f"the {kind} CRD does not serve version {version!r}")


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Forbid properties a structural schema would prune: what a typo in a custom resource silently becomes."""
    if isinstance(schema, dict):
        for value in schema.values():
            if isinstance(value, dict):
                _closed(value)
            elif isinstance(value, list):
                for item in value:
                    _closed(item)
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    return schema


def custom_resource_errors(obj: Mapping[str, Any], *, strict: bool = True) -> list[str]:
    """Every way ``obj`` violates its CRD's schema, as ``"<kind>/<name>: <path>: <message>"`` strings.

    Takes an object as rendered by Helm or as recorded from a ``CustomResource``'s inputs under mocks (numbers
    arrive there as floats; an integral float passes an ``integer`` schema, as JSON has one number type).
    """
    schema = crd_schema(str(obj["apiVersion"]), str(obj["kind"]), strict=strict)
    validator = jsonschema.Draft202012Validator(schema)
    name = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')}"
    return [
        f"{name}: {'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path)))
    ]


def builtin_errors(obj: Mapping[str, Any], kubernetes_version: str, *, strict: bool = True) -> list[str]:
    """Every way a built-in object violates the API of ``kubernetes_version`` (empty when valid).

    An object whose kind has no schema for that version (removed or misspelt API) is an error too.
    """
    name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    try:
        kubernetes_validate.validate(dict(obj), kubernetes_version, strict=strict)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path) or "<root>"
        return [f"{name}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message}"]
    return []


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector selects an object with ``labels``.

    ``None`` (the field absent) selects nothing, as the Prometheus operator treats an absent monitor selector;
    ``{}`` selects everything.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {operator!r}")
    return True


def namespace_selected(
    namespace_selector: Mapping[str, Any] | None,
    namespace: str,
    *,
    prometheus_namespace: str,
    namespace_labels: Mapping[str, str] | None = None,
) -> bool:
    """Whether a Prometheus ``*NamespaceSelector`` lets Prometheus (in ``prometheus_namespace``) see ``namespace``.

    As the operator reads it: an absent selector means Prometheus' own namespace only, ``{}`` every namespace.
    The API server labels every namespace with ``kubernetes.io/metadata.name: <name>``; ``namespace_labels`` adds
    the namespace's own labels.
    """
    if namespace_selector is None:
        return namespace == prometheus_namespace
    labels = {**(namespace_labels or {}), NAMESPACE_NAME_LABEL: namespace}
    return selector_matches(namespace_selector, labels)
