"""Every kind the store holds has an API, and our kinds' APIs are exactly what the CRDs
declare."""

from __future__ import annotations

import pytest

from tensorfusion.store import KIND_SCOPES
from tensorfusion.store.kube_kinds import KUBE_KINDS
from tests.crd_bodies import crd_bodies

CRDS = crd_bodies()


def test_every_kind_the_store_holds_has_an_api() -> None:
    assert KUBE_KINDS.keys() == KIND_SCOPES.keys()
    for name, kind in KUBE_KINDS.items():
        assert kind.kind == name
        assert kind.namespaced == (KIND_SCOPES[name] == "Namespaced")


@pytest.mark.parametrize("crd", CRDS, ids=[crd["spec"]["names"]["kind"] for crd in CRDS])
def test_our_kinds_match_their_crds(crd: dict[str, object]) -> None:
    spec = crd["spec"]
    assert isinstance(spec, dict)
    kind = KUBE_KINDS[spec["names"]["kind"]]
    (version,) = [v for v in spec["versions"] if v["storage"]]
    assert (kind.group, kind.version, kind.plural) == (
        spec["group"],
        version["name"],
        spec["names"]["plural"],
    )
    assert kind.namespaced == (spec["scope"] == "Namespaced")
    assert kind.status_subresource == ("status" in version.get("subresources", {}))


def test_paths() -> None:
    pod, gpu, lease = KUBE_KINDS["Pod"], KUBE_KINDS["GPU"], KUBE_KINDS["Lease"]
    assert pod.api_version == "v1"
    assert pod.collection() == "/api/v1/pods"
    assert pod.collection("team-a") == "/api/v1/namespaces/team-a/pods"
    assert pod.path("web-0", "team-a", "binding") == "/api/v1/namespaces/team-a/pods/web-0/binding"
    assert gpu.api_version == "tensor-fusion.ai/v1"
    assert gpu.collection("ignored") == "/apis/tensor-fusion.ai/v1/gpus"
    assert gpu.path("gpu-0", subresource="status") == "/apis/tensor-fusion.ai/v1/gpus/gpu-0/status"
    assert lease.path("leader", "ops") == (
        "/apis/coordination.k8s.io/v1/namespaces/ops/leases/leader"
    )
