"""The app over a FakeBackend, with test clients on loopback and on another host."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tensorfusion.server.app import create_app
from tensorfusion.server.settings import ServerSettings
from tests.unit.server.fake_backend import FakeBackend

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(token=TOKEN)


@pytest.fixture
def app(backend: FakeBackend, settings: ServerSettings) -> FastAPI:
    return create_app(backend, settings)


@pytest.fixture
def local(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=LOOPBACK, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def remote(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=REMOTE, raise_server_exceptions=False) as client:
        yield client
