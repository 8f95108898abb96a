"""The Pod of a simulate request: YAML or JSON, one Pod, else 400 naming the problem."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tensorfusion.server.errors import ApiError
from tensorfusion.server.pod_body import media_type, read_pod_body
from tests.unit.server.fake_backend import REPORT, FakeBackend

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "annotations": {"tensor-fusion.ai/vram-request": "16Gi"}},
    "spec": {"containers": [{"name": "c", "image": "nvidia/cuda"}]},
}
POD_YAML = """apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    tensor-fusion.ai/vram-request: "16Gi"
spec:
  containers:
  - name: c
    image: nvidia/cuda
"""


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/yaml", "application/yaml"),
        ("Application/YAML; charset=utf-8", "application/yaml"),
        (" text/yaml ", "text/yaml"),
        ("", None),
        (None, None),
    ],
)
def test_media_type(header: str | None, kind: str | None) -> None:
    assert media_type(header) == kind


@pytest.mark.parametrize(
    "content_type",
    ["application/yaml", "text/yaml", "application/x-yaml", "application/json", None],
)
def test_yaml_and_json_give_the_same_pod(content_type: str | None) -> None:
    assert read_pod_body(content_type, POD_YAML.encode()) == POD
    assert read_pod_body(content_type, json.dumps(POD).encode()) == POD


@pytest.mark.parametrize(
    ("content_type", "body", "needle"),
    [
        ("text/plain", POD_YAML.encode(), "'text/plain' is not supported"),
        ("application/x-www-form-urlencoded", b"a=b", "is not supported"),
        ("application/yaml", b"\xff\xfe", "not UTF-8"),
        ("application/yaml", b"kind: [Pod\n", "malformed YAML"),
        ("application/json", b'{"kind": "Pod",', "malformed YAML"),
        ("application/yaml", b"", "exactly one Pod, found 0"),
        ("application/yaml", (POD_YAML + "---\n" + POD_YAML).encode(), "found 2"),
        ("application/yaml", b"kind: Deployment\nmetadata: {}\nspec: {}\n", "must be Pod"),
        ("application/yaml", b"- 1\n- 2\n", "must be Pod"),
        ("application/yaml", b"kind: Pod\nmetadata: x\nspec: {}\n", "metadata and spec"),
        ("application/yaml", b"kind: Pod\nkind: Pod\n", "duplicate key"),
    ],
)
def test_anything_but_one_pod_is_a_bad_request(content_type: str, body: bytes, needle: str) -> None:
    with pytest.raises(ApiError) as caught:
        read_pod_body(content_type, body)
    assert caught.value.status_code == 400
    assert needle in str(caught.value.detail)


def test_simulate_answers_the_backend_report(local: TestClient, backend: FakeBackend) -> None:
    answer = local.post(
        "/api/simulate-schedule", content=POD_YAML, headers={"Content-Type": "text/yaml"}
    )
    assert answer.status_code == 200
    assert answer.json() == REPORT
    assert backend.received == [POD]


def test_simulate_refuses_a_bad_body_before_the_backend(
    local: TestClient, backend: FakeBackend
) -> None:
    answer = local.post(
        "/api/simulate-schedule", content=b"{not: [yaml", headers={"Content-Type": "text/yaml"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "BadRequest"
    assert answer.json()["message"].startswith("body: ")
    assert backend.received == []
