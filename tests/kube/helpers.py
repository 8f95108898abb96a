"""Objects and calls the emulator's tests share."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import httpx
import kubernetes
import pytest

from tests.kube.runner import KubeApi

# The client's API classes, untyped for the tests: their signatures want the client's models,
# and the tests pass plain dicts, which the client sends as they are.
Api = Any


def pod(name: str, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    containers = [{"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": containers, **spec},
    }


class Failure(NamedTuple):
    status: int
    reason: str
    message: str


def api_error(call: Any, *args: Any, **kwargs: Any) -> Failure:
    """The error `call` raises, with the reason and message of its Status."""
    with pytest.raises(kubernetes.client.ApiException) as raised:
        call(*args, **kwargs)
    status = json.loads(raised.value.body or "{}")
    return Failure(
        int(raised.value.status or 0), status.get("reason", ""), status.get("message", "")
    )


def http(kube_api: KubeApi) -> httpx.Client:
    return httpx.Client(base_url=kube_api.url, timeout=30)
