"""The contract module: dependency-free, self-consistent, following Prometheus naming, documented."""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_service import contract
from model_service.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_contract_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import model_service.contract; "
        "heavy = {'numpy', 'prometheus_client', 'pydantic', 'sklearn', 'scipy', 'starlette'}; "
        "heavy &= set(sys.modules); "
        "print(sorted(heavy))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert completed.stdout.strip() == "[]"


def test_package_import_is_free_of_side_effects() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, model_service; print(sorted(m for m in sys.modules if m.startswith('model_')))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert completed.stdout.strip() == "['model_service']"


def test_doctests_pass() -> None:
    failures, attempted = doctest.testmod(contract, raise_on_error=False)
    assert attempted >= 8
    assert failures == 0


def test_metric_names_follow_prometheus_conventions() -> None:
    names = [spec.name for spec in contract.ALL_METRICS]
    assert len(names) == len(set(names))
    for spec in contract.ALL_METRICS:
        assert re.fullmatch(r"model_[a-z0-9_]+", spec.name), spec.name
        assert ":" not in spec.name
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        if spec.type == "histogram":
            assert spec.name.endswith(("_seconds", "_bytes", "_ratio")), f"{spec.name} lacks a base unit"
        assert spec.model_layer == (set(contract.MODEL_LABELS) <= set(spec.labels)), spec.name
        assert spec.help.endswith(".")
        for label in spec.labels:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", label) and not label.startswith("__")


def test_family_names_are_what_prometheus_client_expects() -> None:
    assert contract.HTTP_REQUESTS.family == "model_http_requests"
    assert contract.MODEL_INFO.family == "model"
    assert contract.HTTP_REQUEST_DURATION.family == contract.HTTP_REQUEST_DURATION.name


def test_latency_buckets_contain_thresholds_and_reject_bad_ones() -> None:
    assert set(contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS) <= set(contract.latency_buckets())
    assert 0.042 in contract.latency_buckets([0.042])
    assert list(contract.latency_buckets([0.042])) == sorted(contract.latency_buckets([0.042]))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            contract.latency_buckets([bad])


def test_threshold_rendering_round_trips_through_the_settings() -> None:
    rendered = contract.format_latency_thresholds([0.05, 0.0125])
    parsed = Settings.model_validate(
        {"latency_slo_thresholds_seconds": rendered}
    ).latency_slo_thresholds_seconds
    assert parsed == (0.0125, 0.05)
    assert env_name("latency_slo_thresholds_seconds") == contract.ENV_LATENCY_SLO_THRESHOLDS_SECONDS


def test_bin_semantics() -> None:
    edges = [-1.0, 0.0, 2.5]
    assert [contract.bin_index(edges, v) for v in (-9.0, -1.0, -0.5, 0.0, 2.4, 2.5, 1e9)] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    assert [contract.bin_label(i) for i in (0, 9, 42)] == ["00", "09", "42"]
    with pytest.raises(ValueError):
        contract.bin_label(contract.MAX_DRIFT_BIN_COUNT)


def test_drift_defaults() -> None:
    assert contract.PSI_THRESHOLD == 0.2
    assert contract.JS_DISTANCE_THRESHOLD == 0.1
    assert contract.DEFAULT_DRIFT_BIN_COUNT == 10
    assert contract.DRIFT_MIN_WINDOW_OBSERVATIONS >= 500
    assert (*contract.DRIFT_GROUP_LABELS, contract.LABEL_BIN) == contract.DRIFT_JOIN_LABELS


def test_readme_documents_every_metric_setting_and_constant() -> None:
    for spec in contract.ALL_METRICS:
        assert f"`{spec.name}`" in README, spec.name
        for label in spec.labels:
            assert f"`{label}`" in README, label
    for field, info in Settings.model_fields.items():
        assert f"`{env_name(field)}`" in README, env_name(field)
        default = info.default
        if isinstance(default, tuple):
            default = contract.format_latency_thresholds(default)
        elif isinstance(default, bool):
            default = str(default).lower()
        elif default is not None:
            default = str(default)
        if default is not None:
            assert re.search(rf"`{re.escape(env_name(field))}` \| `{re.escape(default)}`", README), env_name(
                field
            )
    for reason in contract.REQUEST_REJECTION_REASONS + contract.FEEDBACK_REJECTION_REASONS:
        assert f"`{reason}`" in README, reason
    for constant in (
        "DEFAULT_DRIFT_BIN_COUNT",
        "PSI_THRESHOLD",
        "JS_DISTANCE_THRESHOLD",
        "DRIFT_MIN_WINDOW_OBSERVATIONS",
    ):
        assert re.search(rf"`{constant}` \| {re.escape(str(getattr(contract, constant)))} ", README), constant
    assert f"**{contract.model_series_count(8, 3)}**" in README


def test_every_environment_variable_of_the_contract_names_a_setting() -> None:
    # A deployment writes these names, the service reads its settings: the two cannot part.
    variables = {name: value for name, value in vars(contract).items() if name.startswith("ENV_")}
    settings = {env_name(field) for field in Settings.model_fields}
    assert len(variables) >= 10
    assert {value for value in variables.values()} <= settings, sorted(set(variables.values()) - settings)
    assert env_name("name") == contract.ENV_MODEL_NAME
