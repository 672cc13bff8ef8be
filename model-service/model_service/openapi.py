"""The service's API as an OpenAPI 3.1 document, served at ``/openapi.json`` and kept in ``openapi.json``.

Request bodies are the very pydantic validators the service runs (their JSON Schema), so the document cannot
describe a body the service would refuse or the other way round; they depend on the loaded model's features,
which is why the document is built once the model is in. Responses are TypedDicts of the shapes the handlers
write, checked against live answers by the tests.
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from model_service import contract

OPENAPI_VERSION: Final = "3.1.0"
REF_TEMPLATE: Final = "#/components/schemas/{model}"


# ``class`` is a keyword: the functional form gives the key its name. ``id`` is the signed prediction id that
# ``/feedback`` takes back with the true class.
PredictionItem = TypedDict("PredictionItem", {"id": str, "class": str, "confidence": float})


class PredictResponse(TypedDict):
    model_name: str
    model_version: str
    predictions: list[PredictionItem]


class FeedbackResponse(TypedDict):
    accepted: int
    correct: int


class ErrorDetail(TypedDict):
    loc: list[str | int]
    field: str
    msg: str
    type: str


class ErrorResponse(TypedDict):
    detail: list[ErrorDetail]


class FeedbackErrorResponse(TypedDict):
    detail: list[ErrorDetail]
    accepted: NotRequired[Literal[0]]
    """Present when the body was valid but an id or a class was refused."""


class Health(TypedDict):
    status: Literal["ok"]


class Ready(TypedDict):
    status: Literal["ready"]
    model_name: str
    model_version: str


class DriftThresholds(TypedDict):
    psi: float
    js_distance: float
    min_observations: int


class FeatureDrift(TypedDict):
    feature: str
    observations: int
    psi: float | None
    js_distance: float | None
    enough_volume: bool
    drifted: bool


class DriftReport(TypedDict):
    model_name: str
    model_version: str
    window: str
    thresholds: DriftThresholds
    features: list[FeatureDrift]


RESPONSE_SCHEMAS: Final[dict[str, type]] = {
    "PredictResponse": PredictResponse,
    "FeedbackResponse": FeedbackResponse,
    "ErrorResponse": ErrorResponse,
    "FeedbackErrorResponse": FeedbackErrorResponse,
    "Health": Health,
    "Ready": Ready,
    "DriftReport": DriftReport,
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model=schema)}}},
    }


def _not_ready() -> dict[str, Any]:
    return _json("ErrorResponse", "The model is not loaded yet (or failed to load).")


def openapi_document(
    predict: TypeAdapter[Any], feedback: TypeAdapter[Any], *, model_name: str, model_version: str
) -> dict[str, Any]:
    """The document for a service whose bodies ``predict`` and ``feedback`` validate."""
    schemas: dict[str, Any] = {}

    def component(name: str, adapter: TypeAdapter[Any]) -> None:
        schema = adapter.json_schema(ref_template=REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema

    component("PredictRequest", predict)
    component("FeedbackRequest", feedback)
    for name, shape in RESPONSE_SCHEMAS.items():
        component(name, TypeAdapter(shape))
    refused = {
        "413": _json("ErrorResponse", "The body or the batch is larger than the service takes."),
        "422": _json(
            "ErrorResponse", "The body is not JSON or does not match the schema; every problem is listed."
        ),
        "503": _not_ready(),
    }
    paths = {
        contract.ROUTE_PREDICT: {
            "post": {
                "summary": "Predict a class for each record",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="PredictRequest")}}
                    },
                },
                "responses": {
                    "200": _json("PredictResponse", "One prediction per record, in order."),
                    **refused,
                    "500": _json("ErrorResponse", "An injected fault (MODEL_FAULT_ERROR_RATIO)."),
                },
            }
        },
        contract.ROUTE_FEEDBACK: {
            "post": {
                "summary": "Report the true class of earlier predictions",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="FeedbackRequest")}}
                    },
                },
                "responses": {
                    "200": _json("FeedbackResponse", "Every item scored."),
                    **refused,
                    "422": _json(
                        "FeedbackErrorResponse",
                        "The body does not match the schema, or an id or class "
                        "is refused: nothing is scored (all or nothing).",
                    ),
                },
            }
        },
        contract.ROUTE_HEALTHZ: {
            "get": {
                "summary": "Liveness",
                "responses": {
                    "200": _json("Health", "The process serves."),
                    "503": _json("ErrorResponse", "The model failed to load."),
                },
            }
        },
        contract.ROUTE_READYZ: {
            "get": {
                "summary": "Readiness",
                "responses": {"200": _json("Ready", "The model is loaded."), "503": _not_ready()},
            }
        },
        contract.ROUTE_METRICS: {
            "get": {
                "summary": "Prometheus metrics (the metric contract, model_service/contract.py)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format, or OpenMetrics when asked for.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        contract.ROUTE_DRIFT: {
            "get": {
                "summary": "PSI and JS distance per feature since the process started (for people)",
                "responses": {
                    "200": _json("DriftReport", "The statistics."),
                    "503": _not_ready(),
                    "404": _json("ErrorResponse", "Model metrics are disabled."),
                },
            }
        },
        contract.ROUTE_OPENAPI: {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "503": _not_ready(),
                },
            }
        },
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": f"{model_name} (ml-observability model service)", "version": model_version},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def main(argv: list[str] | None = None) -> int:
    """Print the document of the model in ``--artifact-dir`` with the service's default settings: what
    ``model-service/openapi.json`` keeps for the sample model."""
    import argparse
    import json
    from pathlib import Path

    from model_service.app import request_schemas
    from model_service.artifact import read_metadata
    from model_service.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m model_service.openapi", description=main.__doc__)
    parser.add_argument("--artifact-dir", required=True)
    args = parser.parse_args(argv)
    metadata = read_metadata(Path(args.artifact_dir))
    max_batch_size = Settings.model_fields["max_batch_size"].default
    predict, feedback = request_schemas(metadata.feature_names, max_batch_size)
    document = openapi_document(
        predict, feedback, model_name=metadata.model_name, model_version=metadata.model_version
    )
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
