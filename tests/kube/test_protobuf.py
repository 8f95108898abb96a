"""Protobuf request bodies (Helm's release Secrets) and the empty protobuf OpenAPI v2."""

from __future__ import annotations

import base64

import pytest

from tests.kube.helpers import http
from tests.kube.protobuf import CONTENT_TYPE, MAGIC, ProtobufError, decode_object
from tests.kube.runner import KubeApi


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(number: int, key: str, value: bytes) -> bytes:
    return _field(number, _field(1, key.encode()) + _field(2, value))


def _secret(name: str) -> bytes:
    metadata = _field(1, name.encode()) + _field(3, b"") + _entry(11, "owner", b"helm")
    secret = (
        _field(1, metadata)
        + _entry(2, "release", b"\x00\x01binary")
        + _field(3, b"helm.sh/release.v1")
    )
    type_meta = _field(1, b"v1") + _field(2, b"Secret")
    return MAGIC + _field(1, type_meta) + _field(2, secret)


def test_decodes_a_secret() -> None:
    secret = decode_object(_secret("sh.helm.release.v1.r.v1"))
    assert secret["metadata"] == {"name": "sh.helm.release.v1.r.v1", "labels": {"owner": "helm"}}
    assert base64.b64decode(secret["data"]["release"]) == b"\x00\x01binary"
    assert secret["type"] == "helm.sh/release.v1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "missing the k8s"),
        (MAGIC + _field(1, _field(2, b"Pod")) + _field(2, b""), "kind 'Pod' is not supported"),
        (_secret("x")[:-3], "overruns|truncated"),
    ],
)
def test_refuses_what_it_cannot_decode(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        decode_object(body)


def test_a_protobuf_secret_is_stored_and_served_as_json(kube_api: KubeApi) -> None:
    headers = {"Content-Type": CONTENT_TYPE}
    with http(kube_api) as client:
        created = client.post(
            "/api/v1/namespaces/default/secrets", content=_secret("s"), headers=headers
        )
        bad = client.post(
            "/api/v1/namespaces/default/secrets", content=b"k8s\x00\xff", headers=headers
        )
        listed = client.get(
            "/api/v1/namespaces/default/secrets", params={"labelSelector": "owner=helm"}
        )
    assert created.status_code == 201
    assert created.json()["metadata"]["namespace"] == "default"
    assert bad.status_code == 400
    assert "protobuf" in bad.json()["message"]
    assert [s["metadata"]["name"] for s in listed.json()["items"]] == ["s"]


def test_openapi_v2_is_an_empty_protobuf_document(kube_api: KubeApi) -> None:
    with http(kube_api) as client:
        answer = client.get("/openapi/v2")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/com.github.proto-openapi.spec.v2")
    assert answer.content == b""
