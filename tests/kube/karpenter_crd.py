"""CustomResourceDefinitions for APIs that other projects serve and the tests only need to
exist (no such project runs here): an open schema that keeps every field, with a status
subresource, so that objects round-trip through the API-server emulator as written."""

from __future__ import annotations

from typing import Any, Literal, cast

import kubernetes


def open_crd(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    scope: Literal["Cluster", "Namespaced"] = "Cluster",
) -> dict[str, Any]:
    """A CRD serving `kind` as group/version/plural, with any fields kept."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def nodeclaim_crd() -> dict[str, Any]:
    """Karpenter's NodeClaim (karpenter.sh/v1, cluster-scoped)."""
    return open_crd("karpenter.sh", "v1", "NodeClaim", "nodeclaims")


def install(api_client: kubernetes.client.ApiClient, *crds: dict[str, Any]) -> None:
    extensions = kubernetes.client.ApiextensionsV1Api(api_client)
    for body in crds:
        # The client sends a dict as it is; its stubs name only the model class.
        extensions.create_custom_resource_definition(body=cast(Any, body))
