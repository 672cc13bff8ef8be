"""The OpenAPI document: served at /openapi.json, the same as the copy kept in the repository for the sample
model, listing exactly the routes the app serves, and describing what the service really answers: live
responses, good and bad, validate against it (jsonschema), and the request schema refuses what the service
refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from service_helpers import record
from starlette.routing import Route
from starlette.testclient import TestClient

from model_service import contract, data

DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
"""The document of the sample model, as the README links it."""


def validator(document: dict[str, Any], schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator of ``schema_name`` that resolves the document's component references."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def response_schema(document: dict[str, Any], path: str, method: str, status: int) -> str:
    ref = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"][
        "$ref"
    ]
    return str(ref.rsplit("/", 1)[1])


def check(document: dict[str, Any], path: str, method: str, response: Any) -> None:
    name = response_schema(document, path, method, response.status_code)
    errors = list(validator(document, name).iter_errors(response.json()))
    assert errors == [], f"{method.upper()} {path} {response.status_code} breaks {name}: {errors[0].message}"


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get(contract.ROUTE_OPENAPI)
    assert response.status_code == 200
    return dict(response.json())


def test_the_kept_copy_is_what_the_sample_model_serves(document: dict[str, Any]) -> None:
    kept = json.loads(DOCUMENT.read_text())
    assert kept == document, (
        "model-service/openapi.json is stale: regenerate it with "
        "python -m model_service.openapi --artifact-dir <trained sample> > openapi.json"
    )


def test_it_lists_exactly_the_routes_the_app_serves(client: TestClient, document: dict[str, Any]) -> None:
    served = {
        (route.path, method.lower())
        for route in client.app.routes
        if isinstance(route, Route)
        for method in (route.methods or set())
        if method != "HEAD"
    }
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert documented == served
    assert {path for path, _ in served} == set(contract.ROUTES)


def test_good_answers_match_their_documented_shapes(client: TestClient, document: dict[str, Any]) -> None:
    predicted = client.post(
        contract.ROUTE_PREDICT, json={"records": [dict.fromkeys(data.FEATURE_NAMES, 0.5)]}
    )
    check(document, contract.ROUTE_PREDICT, "post", predicted)
    [prediction] = predicted.json()["predictions"]
    scored = client.post(
        contract.ROUTE_FEEDBACK,
        json={"feedback": [{"prediction_id": prediction["id"], "actual_class": prediction["class"]}]},
    )
    check(document, contract.ROUTE_FEEDBACK, "post", scored)
    for path in (contract.ROUTE_HEALTHZ, contract.ROUTE_READYZ, contract.ROUTE_DRIFT):
        answer = client.get(path)
        assert answer.status_code == 200
        check(document, path, "get", answer)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (contract.ROUTE_PREDICT, b"{not json", 422),
        (contract.ROUTE_PREDICT, json.dumps({"records": [{"f0": "1"}]}).encode(), 422),
        (contract.ROUTE_PREDICT, json.dumps({"records": []}).encode(), 422),
        (
            contract.ROUTE_FEEDBACK,
            json.dumps({"feedback": [{"prediction_id": "forged", "actual_class": "x"}]}).encode(),
            422,
        ),
        (contract.ROUTE_FEEDBACK, json.dumps({"feedback": "none"}).encode(), 422),
    ],
)
def test_refusals_match_their_documented_shapes(
    client: TestClient, document: dict[str, Any], path: str, body: bytes, status: int
) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    check(document, path, "post", answer)


def test_the_request_schema_refuses_what_the_service_refuses(
    client: TestClient, document: dict[str, Any]
) -> None:
    request = validator(document, "PredictRequest")
    good = {"records": [record([0.1] * len(data.FEATURE_NAMES), data.FEATURE_NAMES)]}
    assert request.is_valid(good) and client.post(contract.ROUTE_PREDICT, json=good).status_code == 200
    for bad in (
        {"records": []},
        {"records": [{**good["records"][0], "extra": 1.0}]},
        {"records": [{k: v for k, v in good["records"][0].items() if k != "f0"}]},
        {"records": [{**good["records"][0], "f0": "1.0"}]},
        {"rows": good["records"]},
    ):
        assert not request.is_valid(bad), bad
        assert client.post(contract.ROUTE_PREDICT, json=bad).status_code == 422, bad


def test_it_is_not_served_before_the_model_is_loaded(make_client: Any) -> None:
    waiting = make_client(load="manual")
    assert waiting.get(contract.ROUTE_OPENAPI).status_code == 503
