"""Resource names and amounts as kube-scheduler counts them: cpu in millicores, memory,
ephemeral storage and huge pages in bytes, everything else in whole units; all rounded up
like `Quantity.MilliValue()` / `Quantity.Value()`."""

from __future__ import annotations

import functools

from tensorfusion.api.names import qualified_name_problem
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import QuantityError
from tensorfusion.scheduler.plugins.spec_reader import json_type

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"
HUGEPAGES_PREFIX = "hugepages-"
_NATIVE_PREFIX = "kubernetes.io/"
_ATTACHABLE_PREFIX = "attachable-volumes-"
_QUOTA_PREFIX = "requests."
_CONTAINER_STANDARD = frozenset({CPU, MEMORY, EPHEMERAL_STORAGE})

MAX_AMOUNT = 2**53
"""Larger amounts are refused, so that sums over many pods and the `* 100` of scoring stay
far inside int64."""


@functools.lru_cache(maxsize=1024)
def is_extended(resource: str) -> bool:
    """A vendor resource such as `nvidia.com/gpu` (kube's IsExtendedResourceName)."""
    if "/" not in resource or _NATIVE_PREFIX in resource or resource.startswith(_QUOTA_PREFIX):
        return False
    return qualified_name_problem(_QUOTA_PREFIX + resource) is None


def is_scalar(resource: str) -> bool:
    """Resources kube keeps beside cpu/memory/ephemeral-storage (its ScalarResources): an
    extended or a `kubernetes.io/`-prefixed resource, huge pages or attachable volumes."""
    return (
        resource.startswith((HUGEPAGES_PREFIX, _ATTACHABLE_PREFIX))
        or _NATIVE_PREFIX in resource
        or is_extended(resource)
    )


def container_resource_problem(resource: str) -> str | None:
    """Why a container may not request `resource`, as the API server says, or None."""
    if "/" not in resource:
        if resource in _CONTAINER_STANDARD or resource.startswith(HUGEPAGES_PREFIX):
            return None
        return "must be a standard resource for containers (cpu, memory, ephemeral-storage)"
    if _NATIVE_PREFIX in resource or is_extended(resource):
        return None
    return "is not a valid extended resource name"


def resource_amount(resource: str, value: object) -> tuple[int, bool]:
    """(amount, whole): the amount in the resource's unit and whether the quantity was a
    whole number of units (extended resources must be). Raises QuantityError."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return _amount(resource == CPU, value)
    raise QuantityError(f"must be a quantity (a string or a number), got {json_type(value)}")


@functools.lru_cache(maxsize=4096)
def _amount(milli: bool, value: str | int | float) -> tuple[int, bool]:
    # Pods repeat the same few strings ("500m", "1Gi"); parsing each once keeps a pod's
    # requests in microseconds. Errors are not cached, so bad input costs a parse each time.
    quantity = Quantity.coerce(value)
    if quantity.is_negative:
        raise QuantityError(f"must not be negative (got {quantity.text!r})")
    amount = quantity.milli_value() if milli else quantity.value()
    if amount > MAX_AMOUNT:
        raise QuantityError(f"{quantity.text!r} is too large (the limit is {MAX_AMOUNT} units)")
    exact = quantity.exact * (1000 if milli else 1)
    return amount, exact.denominator == 1
