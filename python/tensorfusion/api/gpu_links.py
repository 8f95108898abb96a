"""How objects of a cluster point at each other: a GPU at its node and pool, a GPUNode at
its pool, a GPU at its NVLink peers. Each key is spelled here once; the functions read plain
dicts (as parsed from YAML) and tolerate malformed ones, so they can run before validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorfusion.api.annotations import GPU_POOL

OWNER_LABEL = "tensor-fusion.ai/owner"
"""On a GPU: the name of its node. On a GPUNode: the name of its pool."""
HOSTNAME_LABEL = "kubernetes.io/hostname"
"""In a GPU's `status.nodeSelector`: its node, where the owner label is absent."""
POOL_LABEL = GPU_POOL
"""On a GPU: the name of its pool (the same key as the pod annotation). On a node that a pool
provisioned, its NodeClaim or its GPUNodeClaim: that pool's name."""
DEFAULT_POOL_ANNOTATION = "tensor-fusion.ai/is-default-pool"
"""On a GPUPool, value "true": pods that name no pool go there."""


def text_at(obj: object, *path: str) -> str | None:
    """The string at a path of keys, or None where a step is missing or of another type."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, str) else None


def is_default_pool(pool: Mapping[str, Any]) -> bool:
    """Whether a GPUPool carries the default-pool annotation."""
    return text_at(pool, "metadata", "annotations", DEFAULT_POOL_ANNOTATION) == "true"


def gpu_node_name(gpu: Mapping[str, Any]) -> str | None:
    """The node a GPU sits on: its owner label, else its hostname node selector."""
    return text_at(gpu, "metadata", "labels", OWNER_LABEL) or text_at(
        gpu, "status", "nodeSelector", HOSTNAME_LABEL
    )


def gpu_pool_name(gpu: Mapping[str, Any], gpu_node: Mapping[str, Any] | None) -> str | None:
    """The pool a GPU belongs to: its pool label, else its GPUNode's owner label."""
    own = text_at(gpu, "metadata", "labels", POOL_LABEL)
    if own is not None or gpu_node is None:
        return own
    return text_at(gpu_node, "metadata", "labels", OWNER_LABEL)


def gpu_nvlink_peers(gpu: Mapping[str, Any]) -> list[str]:
    """Names of the GPUs this one has an NVLink to (none when not reported)."""
    status = gpu.get("status")
    peers = status.get("nvlinkPeers") if isinstance(status, Mapping) else None
    return [peer for peer in peers if isinstance(peer, str)] if isinstance(peers, list) else []
