"""The controller's management API: writes need a bearer token the cluster accepts
(TokenReview in the emulator), reads are open unless `--api-auth=all`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tensorfusion.controller.control_plane import NO_WORKERS
from tensorfusion.controller.token_review import CACHE_TTL_S, TokenReviewAuthenticator
from tensorfusion.store.kube_http import KubeApi as StoreApi
from tensorfusion.store.kubeconfig import client_configuration
from tests.controller.cluster import RunningController, apply_crds, running_controller, wait_for
from tests.kube.runner import KubeApi
from tests.unit.operator.test_leader_election import Clock

pytestmark = pytest.mark.timing  # waits for the scheduler to be ready

TOKEN = "ci-robot-token"
WORKER = {"tflopsRequest": "10", "vramLimit": "1Gi"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authenticator(kube_api: KubeApi, clock: Clock) -> Iterator[TokenReviewAuthenticator]:
    api = StoreApi(client_configuration(kube_api.kubeconfig), 10.0)
    yield TokenReviewAuthenticator(api, clock=clock)
    api.close()


def test_a_registered_token_is_accepted_and_answers_are_kept_a_while(
    kube_api: KubeApi, authenticator: TokenReviewAuthenticator, clock: Clock
) -> None:
    assert not authenticator.review(TOKEN.encode())
    kube_api.register_token(TOKEN, "system:serviceaccount:ci:robot")
    assert not authenticator.review(TOKEN.encode())  # the refusal is kept
    clock.now += CACHE_TTL_S
    assert authenticator.review(TOKEN.encode())


def test_a_token_that_is_not_ascii_is_refused_without_a_review(
    authenticator: TokenReviewAuthenticator,
) -> None:
    assert not authenticator.review("jeton-é".encode())


def test_an_unreachable_server_accepts_nothing(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    api = StoreApi(client_configuration(kubeconfig), 5.0)
    try:
        assert not TokenReviewAuthenticator(api).review(TOKEN.encode())
    finally:
        api.close()


@pytest.fixture
def controller(kube_api: KubeApi, tmp_path: Path) -> Iterator[RunningController]:
    apply_crds(kube_api.kubeconfig)
    kube_api.register_token(TOKEN, "system:serviceaccount:ci:robot")
    with running_controller(kube_api.kubeconfig, tmp_path) as running:
        with running.http() as http:
            wait_for("the scheduler to be ready", lambda: http.get("/readyz").status_code == 200)
        yield running


def test_a_write_needs_a_token_the_cluster_accepts(controller: RunningController) -> None:
    with controller.http() as http:
        anonymous = http.post("/api/workers", json=WORKER)
        assert anonymous.status_code == 401
        assert "send 'Authorization: Bearer <token>'" in anonymous.json()["message"]
        wrong = http.post("/api/workers", json=WORKER, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "TokenReview" in wrong.json()["message"]
        # Past the guard: the controller itself serves no local workers.
        allowed = http.post(
            "/api/workers", json=WORKER, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert allowed.status_code == 503
        assert allowed.json()["message"] == NO_WORKERS


def test_reads_are_open_by_default(controller: RunningController) -> None:
    remote = TestClient(controller.controller.api_app())  # its client is not loopback
    assert remote.get("/api/pools").status_code == 200


def test_reads_need_a_token_with_api_auth_all(kube_api: KubeApi, tmp_path: Path) -> None:
    apply_crds(kube_api.kubeconfig)
    kube_api.register_token(TOKEN, "system:serviceaccount:ci:robot")
    with running_controller(kube_api.kubeconfig, tmp_path, api_auth="all") as running:
        remote = TestClient(running.controller.api_app())
        wait_for("the scheduler to be ready", lambda: remote.get("/readyz").status_code == 200)
        assert remote.get("/api/pools").status_code == 401
        answer = remote.get("/api/pools", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
