"""Service configuration from ``MODEL_*`` environment variables, validated at start.

A bad value stops the process with a message naming the variable, instead of serving with a surprise.
Defaults are production-safe: fault injection is off, access logs are off (the metrics count every
request), and the body and batch limits bound the work one request can cause.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model_service import contract

ENV_PREFIX = "MODEL_"
MIN_SIGNING_KEY_BYTES = 16


class Settings(BaseSettings):
    """All settings; each field ``x`` is read from ``MODEL_X``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
    )

    host: str = Field(default="0.0.0.0", description="Address to listen on.")
    port: int = Field(
        default=contract.DEFAULT_PORT, ge=1, le=65535, description="Port of the API and /metrics."
    )
    artifact_dir: Path = Field(
        default=Path("/opt/model"), description="Directory written by the train command."
    )
    name: str | None = Field(
        default=None,
        pattern=contract.NAME_PATTERN,
        description="Name the service reports (model_name in its metrics, in its prediction ids); unset: the "
        "artifact's. A platform deploying one image under several names gives each its own.",
    )
    latency_slo_thresholds_seconds: Annotated[tuple[float, ...], NoDecode] = Field(
        default=contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS,
        description="Comma-separated latency SLO thresholds; each becomes a request-duration bucket bound.",
    )
    max_batch_size: int = Field(
        default=256, ge=1, le=10_000, description="Records per /predict or /feedback call."
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, le=64 << 20, description="Largest request body accepted."
    )
    feedback_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for prediction ids; share it across replicas so any replica scores any id. "
        "Unset: a random key per process (ids only verify on the replica that issued them).",
    )
    accepted_versions: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="Comma-separated model versions whose prediction ids are scored besides the service's "
        f"own (at most {contract.MAX_ACCEPTED_VERSIONS} in all): the stable's and the canary's, so that "
        "feedback reaching a replica of either version counts under the version that predicted.",
    )
    feedback_max_age_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="Feedback for predictions older than this is refused."
    )
    model_metrics_enabled: bool = Field(
        default=True,
        description="Per-prediction model metrics (inference time, classes, confidence, drift bins). "
        "Off only to measure their cost.",
    )
    input_quality_metrics_enabled: bool = Field(
        default=True,
        description="Input-quality counters (records examined; missing, null, non-finite and out-of-range "
        "values per feature). Off only to measure their cost.",
    )
    instrumentation_enabled: bool = Field(
        default=True,
        description="HTTP, model and input-quality instruments of /predict. Off only to measure what "
        "instrumentation costs: no instrument is then updated while /predict answers.",
    )
    fault_error_ratio: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of /predict answered 500, spread evenly over the "
        "requests (model_service.faults)."
    )
    fault_extra_latency_seconds: float = Field(
        default=0.0,
        ge=0.0,
        le=60.0,
        description="Delay added to /predict requests chosen by fault_latency_ratio.",
    )
    fault_latency_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Share of /predict requests that get the extra latency, "
        "spread evenly."
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    access_log: bool = Field(
        default=False, description="Per-request log lines; the metrics already count requests."
    )
    shutdown_timeout_seconds: float = Field(
        default=20.0, ge=0.0, description="Time to finish in-flight requests after SIGTERM."
    )

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: object) -> object:
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                "expected a port number; a URL here is a Kubernetes service link of a Service named "
                "'model': set enableServiceLinks: false on the pod or rename the Service"
            )
        return value

    @field_validator("latency_slo_thresholds_seconds", mode="before")
    @classmethod
    def _split_thresholds(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            try:
                return tuple(float(part) for part in parts)
            except ValueError as error:
                raise ValueError("expected comma-separated seconds such as '0.025,0.1'") from error
        return value

    @field_validator("latency_slo_thresholds_seconds")
    @classmethod
    def _check_thresholds(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not 1 <= len(value) <= contract.MAX_LATENCY_SLO_THRESHOLDS:
            raise ValueError(
                f"expected 1 to {contract.MAX_LATENCY_SLO_THRESHOLDS} thresholds, got {len(value)}"
            )
        for threshold in value:
            if not (math.isfinite(threshold) and 0 < threshold <= 60):
                raise ValueError(f"thresholds must be in (0, 60] seconds, got {threshold!r}")
        return tuple(sorted(set(value)))

    @field_validator("accepted_versions", mode="before")
    @classmethod
    def _split_versions(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("accepted_versions")
    @classmethod
    def _check_versions(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        versions = tuple(dict.fromkeys(value))
        if len(versions) > contract.MAX_ACCEPTED_VERSIONS:
            raise ValueError(
                f"expected at most {contract.MAX_ACCEPTED_VERSIONS} versions, got {len(versions)}"
            )
        for version in versions:
            if not re.match(contract.NAME_PATTERN, version):
                raise ValueError(f"{version!r} is not a model version (letters, digits, '.', '_' and '-')")
        return versions

    @field_validator("feedback_signing_key")
    @classmethod
    def _key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_SIGNING_KEY_BYTES} bytes")
        return value

    @property
    def fault_injection_enabled(self) -> bool:
        """Whether any fault is configured; the fault counter is exported only then."""
        return self.fault_error_ratio > 0 or (
            self.fault_extra_latency_seconds > 0 and self.fault_latency_ratio > 0
        )


def env_name(field: str) -> str:
    """Environment variable of a settings field, e.g. ``env_name("port") == "MODEL_PORT"``."""
    return f"{ENV_PREFIX}{field.upper()}"


def describe_error(error: ValidationError) -> str:
    """Render a settings error with environment variable names, one problem per line."""
    lines = [f"invalid configuration ({error.error_count()} problem(s)):"]
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        shown = "<hidden>" if field == "feedback_signing_key" else repr(item.get("input"))
        lines.append(f"  {env_name(field)}: {item['msg']} (got {shown})")
    return "\n".join(lines)
