"""A small client of the management API. It finds the control plane the way `up` announces
it: `--server`/`TF_SERVER`, else the endpoint file in the state dir; the token comes from
`TF_TOKEN`, else the state dir's token file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tensorfusion.embedded.state_dir import StatePaths, default_state_dir
from tensorfusion.errors import TensorFusionError

SERVER_ENV = "TF_SERVER"
TOKEN_ENV = "TF_TOKEN"
START_HINT = (
    "start one with `tensor-fusion up --fleet examples/fleets/h100.yaml` "
    "(on a host with NVIDIA GPUs, `tensor-fusion up`)"
)


class NoControlPlane(TensorFusionError):
    """No control plane answers where we looked; the message says how to start one."""


class ApiError(TensorFusionError):
    """The API answered with an error: its status and JSON error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        message = str(body.get("message") or body.get("error") or f"HTTP {status}")
        field = body.get("field")
        super().__init__(f"{field}: {message}" if field else message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class ApiClient:
    url: str
    token: str | None
    timeout_s: float = 30.0

    @classmethod
    def locate(cls, server: str | None = None, state_dir: Path | None = None) -> ApiClient:
        paths = StatePaths(state_dir or default_state_dir())
        url = server or os.environ.get(SERVER_ENV) or paths.read_endpoint()
        if url is None:
            raise NoControlPlane(
                f"no control plane is running (nothing announced in {paths.root}); {START_HINT}"
            )
        return cls(url.rstrip("/"), os.environ.get(TOKEN_ENV) or paths.read_token())

    def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, self.url + path, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.TransportError as exc:
            raise NoControlPlane(
                f"no control plane answers at {self.url} ({exc}); {START_HINT}"
            ) from exc
        data = _json(response)
        if response.is_error:
            raise ApiError(response.status_code, data if isinstance(data, dict) else {})
        return data

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200] or f"HTTP {response.status_code}"}
