"""What node provisioning needs from a cloud vendor: launch a GPU instance (trying instance
types in order), terminate instances, and list the instances it launched for a pool, so that
none is ever left untracked. `aws.py` implements it with boto3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

CLAIM_TAG = "tensor-fusion.ai/node-claim"
"""The tag naming the GPUNodeClaim an instance belongs to."""
POOL_TAG = "tensor-fusion.ai/pool"
"""The tag naming the pool an instance was launched for."""


@dataclass(frozen=True)
class LaunchRequest:
    claim: str
    """The GPUNodeClaim's name: tagged onto the instance and used as its idempotency token."""
    pool: str
    instance_types: tuple[str, ...]
    """In order of preference: the next is tried when the vendor has no capacity for one."""
    capacity_type: Literal["on-demand", "spot"] = "on-demand"
    zones: tuple[str, ...] = ()
    image_id: str | None = None
    key_pair: str | None = None
    instance_profile: str | None = None
    """The IAM role the node runs as, through its instance profile."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The node's labels, for the node to register with (user data / tags)."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    instance_type: str
    zone: str
    state: str
    """The vendor's state: pending, running, shutting-down, terminated, stopping, stopped."""
    claim: str | None


@dataclass(frozen=True)
class LaunchResult:
    instance: Instance
    passed_over: tuple[tuple[str, str], ...] = ()
    """(instance type, why it was not launched) for each type tried before the one used."""


class CloudProvider(Protocol):
    def launch(self, request: LaunchRequest) -> LaunchResult:
        """Launch one instance, trying `request.instance_types` in order; CloudError when
        none could be launched (kind "capacity" when every type lacked capacity)."""
        ...

    def terminate(self, instance_ids: Sequence[str]) -> None: ...

    def instances(self, pool: str) -> list[Instance]:
        """Every instance tagged with `pool` that is not terminated."""
        ...
