"""Fixtures: `kube_api` (a fresh API-server emulator per test), `kube_api_module` (one per
module) and `kube_tools` (the real kubectl and helm)."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes
import pytest

from tests.kube.runner import EmulatorThread, KubeApi
from tests.kube_tools import KubeTools, ToolsUnavailable, kube_tools_or_reason


@pytest.fixture
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A running emulator: `.url`, `.kubeconfig`, `.register_token(token, username)`,
    `.compact()`."""
    with EmulatorThread(tmp_path_factory.mktemp("kube") / "kubeconfig") as api:
        yield api


@pytest.fixture(scope="module")
def kube_api_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """As `kube_api`, shared by the tests of one module."""
    with EmulatorThread(tmp_path_factory.mktemp("kube") / "kubeconfig") as api:
        yield api


@pytest.fixture
def api_client(kube_api: KubeApi) -> Iterator[kubernetes.client.ApiClient]:
    """The official client, configured from `kube_api.kubeconfig`."""
    client = kubernetes.config.new_client_from_config(config_file=str(kube_api.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def core_v1(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def kube_tools() -> KubeTools:
    """The real kubectl v1.35 and helm v4, fetched once into `.tools/`."""
    tools = kube_tools_or_reason()
    if isinstance(tools, ToolsUnavailable):
        pytest.skip(str(tools))
    return tools
