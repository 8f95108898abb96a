"""Listings answer conditionally (ETag, 304 on If-None-Match) and narrow by query parameters
to the nodes a client shows; without parameters their bodies are as before."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tensorfusion.server.backend import NodeQuery
from tests.unit.server.fake_backend import GPU, NODE, WORKER, FakeBackend

LISTINGS = [
    "/api/pools",
    "/api/nodes",
    "/api/gpus",
    "/api/workers",
    "/api/nodes?limit=5",
    "/api/workers?pending=true",
]


@pytest.mark.parametrize("path", LISTINGS)
def test_an_unchanged_listing_is_304_without_a_body(local: TestClient, path: str) -> None:
    first = local.get(path)
    etag = first.headers["ETag"]
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-cache"
    again = local.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    for sent in (f'"other", W/{etag}', "*"):
        assert local.get(path, headers={"If-None-Match": sent}).status_code == 304


def test_another_etag_gets_the_body(local: TestClient) -> None:
    etag = local.get("/api/gpus").headers["ETag"]
    stale = local.get("/api/gpus", headers={"If-None-Match": '"not-this-one"'})
    assert stale.status_code == 200
    assert stale.json() == {"gpus": [GPU]}
    assert stale.headers["ETag"] == etag
    assert local.get("/api/workers").headers["ETag"] != etag, "another body, another tag"


def test_nodes_narrow_by_pool_match_and_limit(local: TestClient, backend: FakeBackend) -> None:
    answer = local.get("/api/nodes?pool=default-pool&match=gpu-3&limit=2")
    assert answer.status_code == 200
    assert answer.json() == {"nodes": [NODE], "total": 1}
    assert local.get("/api/nodes?match=x").json() == {"nodes": [NODE]}, "total only with limit"
    assert backend.received == [NodeQuery("default-pool", "gpu-3", 2), NodeQuery(None, "x", None)]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/nodes?limit=0", "query.limit"),
        ("/api/nodes?pool=", "query.pool"),
        ("/api/workers?pending=maybe", "query.pending"),
    ],
)
def test_a_bad_parameter_is_422_naming_it(local: TestClient, path: str, field: str) -> None:
    answer = local.get(path)
    assert answer.status_code == 422
    assert answer.json()["field"] == field


def test_gpus_and_workers_narrow_to_the_nodes_asked_for(
    local: TestClient, backend: FakeBackend
) -> None:
    assert local.get("/api/gpus?node=a&node=b").json() == {"gpus": [GPU]}
    assert local.get("/api/workers?node=b").json() == {"workers": [WORKER]}
    assert backend.received == [frozenset({"a", "b"}), frozenset({"b"})]


def test_pending_workers_are_asked_for_by_themselves(
    local: TestClient, backend: FakeBackend
) -> None:
    assert local.get("/api/workers?pending=true").json() == {"workers": [WORKER]}
    assert local.get(f"/api/workers?pending=1&node={WORKER['node']}").json() == {
        "workers": [WORKER]
    }
    assert local.get("/api/workers?pending=true&node=elsewhere").json() == {"workers": []}
    assert backend.received == ["pending"] * 3
    local.get("/api/workers?pending=false")
    assert backend.received == ["pending"] * 3, "false lists every worker"
