"""KubeStore without a server: bad arguments are refused before any request, an unreachable
server is one clear error naming the object, and the server's refusals become the store's
errors with the server's message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    NotFoundError,
    NotServedError,
    ResourceExpiredError,
    StoreError,
)
from tensorfusion.store.kube import KubeStore
from tensorfusion.store.kube_http import api_error, decoded_status

from .contract import BAD_OBJECTS, assert_refused, pod
from .test_kubeconfig import write_kubeconfig

# Nothing listens on port 1, so any request that is made fails as unreachable.
UNREACHABLE = "https://127.0.0.1:1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KubeStore]:
    with KubeStore(write_kubeconfig(tmp_path / "config", UNREACHABLE)) as store:
        yield store


@pytest.mark.parametrize(
    ("obj", "field"),
    [(obj, field) for _, obj, field in BAD_OBJECTS],
    ids=[d for d, *_ in BAD_OBJECTS],
)
def test_bad_objects_are_refused_without_a_request(store: KubeStore, obj: Any, field: str) -> None:
    assert_refused(field, store.create, obj)
    assert_refused(f"objs[1].{field}", store.create_many, [pod("a"), obj])


@pytest.mark.parametrize(
    ("call", "args", "field"),
    [
        ("get", ("Widget", "a"), "kind"),
        ("list", ("Pod", None, {"app": "a b"}), "label_selector"),
        ("patch", ("Pod", "a", ["op"]), "patch"),
        ("bind", ("default", "a", "Node_1", {}), "node_name"),
        ("events_since", (-1,), "resource_version"),
        ("watch", ("Pod", 0, 1), "kinds"),
        ("acquire_lease", ("leader", "", 10), "holder"),
        ("lease_holder", ("Leader",), "name"),
    ],
)
def test_bad_arguments_are_refused_without_a_request(
    store: KubeStore, call: str, args: tuple[Any, ...], field: str
) -> None:
    assert_refused(field, getattr(store, call), *args)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"request_timeout_s": 0}, "request_timeout_s"), ({"lease_namespace": "Ops"}, "namespace")],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any], field: str) -> None:
    config = write_kubeconfig(tmp_path / "config", UNREACHABLE)
    assert_refused(field, KubeStore, config, **options)


def test_an_unreachable_server_is_named_with_the_object(store: KubeStore) -> None:
    with pytest.raises(StoreError, match=r"^Pod team-a/web-0: cannot reach the API server at "):
        store.get("Pod", "web-0", "team-a")
    with pytest.raises(
        StoreError, match=r"^list of GPU: cannot reach the API server at https://127"
    ):
        store.list("GPU")


def test_a_closed_store_refuses_calls(store: KubeStore) -> None:
    store.close()
    store.close()
    for call in (lambda: store.get("Pod", "a"), lambda: store.lease_holder("leader")):
        with pytest.raises(StoreError, match=r"^the store on https://127\.0\.0\.1:1 is closed$"):
            call()


def status(reason: str, message: str, **details: Any) -> dict[str, Any]:
    return {"kind": "Status", "reason": reason, "message": message, "details": details}


@pytest.mark.parametrize(
    ("code", "body", "error", "text"),
    [
        (
            404,
            status("NotFound", 'pods "web-0" not found', name="web-0"),
            NotFoundError,
            "^Pod default/web-0 not found$",
        ),
        (
            404,
            status("NotFound", "the server could not find the requested resource"),
            NotServedError,
            "does not serve this resource: the server could not find",
        ),
        (
            409,
            status("AlreadyExists", "exists"),
            AlreadyExistsError,
            "^Pod default/web-0 already exists$",
        ),
        (
            409,
            status("Conflict", "the object has been modified"),
            ConflictError,
            "has been modified",
        ),
        (
            410,
            status("Expired", "too old resource version: 3"),
            ResourceExpiredError,
            "too old.*list again",
        ),
        (500, status("InternalError", "etcd is down"), StoreError, "answered 500: etcd is down$"),
    ],
)
def test_refusals_become_store_errors(
    code: int, body: dict[str, Any], error: type[Exception], text: str
) -> None:
    raised = api_error(code, body, "Pod default/web-0")
    assert type(raised) is error
    assert raised.__class__ is not ConfigError
    with pytest.raises(error, match=text):
        raise raised


def test_an_invalid_object_names_the_server_s_field() -> None:
    body = status("Invalid", "spec.replicas: must be >= 0", causes=[{"field": "spec.replicas"}])
    raised = api_error(422, body, "GPUPool pool-a")
    assert isinstance(raised, ConfigError)
    assert raised.field == "spec.replicas"
    assert str(raised) == "spec.replicas: GPUPool pool-a: spec.replicas: must be >= 0"
    assert api_error(422, status("Invalid", "bad"), "x").field == "object"  # type: ignore[union-attr]


def test_a_body_that_is_not_json_is_kept_as_text() -> None:
    assert decoded_status(b"<html>bad gateway</html>\n") == {"message": "<html>bad gateway</html>"}
    assert decoded_status(b"") == {"message": "(no message)"}
    assert decoded_status(b'["a"]') == {"message": '["a"]'}
