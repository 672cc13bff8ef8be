"""Shared fixtures: one trained artifact per session, a fresh app and registry per test.

Each test gets its own registry, so exported values start at zero and can be compared exactly with
the traffic the test sent. The model is the real one, trained once by the real ``train`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import SIGNING_KEY, running_server
from starlette.testclient import TestClient

from model_service.app import create_app
from model_service.artifact import ArtifactMetadata
from model_service.settings import Settings
from model_service.train import train


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("artifact")
    train(directory)
    return directory


@pytest.fixture(scope="session")
def metadata(artifact_dir: Path) -> ArtifactMetadata:
    from model_service.artifact import read_metadata

    return read_metadata(artifact_dir)


@pytest.fixture
def make_settings(artifact_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"artifact_dir": artifact_dir, "feedback_signing_key": SIGNING_KEY}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(load: str = "now", **overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides), load=load))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def server(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 (ephemeral port) serving a fresh app; yields its base URL."""
    with running_server(create_app(make_settings(), load="background")) as url:
        yield url
