"""A pool's GPU capacity as its upkeep weighs it: amounts in (milli-TFLOPS, bytes), each GPU's
capacity and free room from its status, and the pool's min/warm/max bounds in those units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from tensorfusion.api.common import GPUOrCPUResource
from tensorfusion.api.gpu_capacity import checked_quantity, gpu_capacity

Bound = tuple[int | None, int | None]
"""(milli-TFLOPS, bytes) a pool must stay at or above (or below), None where not given."""


class Amounts(NamedTuple):
    tflops_milli: int
    vram_bytes: int

    def plus(self, other: Amounts) -> Amounts:
        return Amounts(self.tflops_milli + other.tflops_milli, self.vram_bytes + other.vram_bytes)

    def minus(self, other: Amounts) -> Amounts:
        return Amounts(self.tflops_milli - other.tflops_milli, self.vram_bytes - other.vram_bytes)


NONE = Amounts(0, 0)


def summed(amounts: Iterable[Amounts]) -> Amounts:
    total = NONE
    for amount in amounts:
        total = total.plus(amount)
    return total


def bound(resource: GPUOrCPUResource | None) -> Bound:
    """A capacityConfig bound (minResources, warmResources, maxResources) in amounts' units."""
    if resource is None:
        return None, None
    return (
        None if resource.tflops is None else resource.tflops.milli_value(),
        None if resource.vram is None else resource.vram.value(),
    )


def at_least(amounts: Amounts, low: Bound) -> bool:
    return all(need is None or have >= need for have, need in zip(amounts, low, strict=True))


def gpu_room(gpu: Mapping[str, Any]) -> tuple[Amounts, Amounts | None]:
    """(capacity, free) of a GPU object: free is its `status.available`, None while the
    reconcilers have not written it. FleetError names a malformed quantity."""
    name = gpu["metadata"]["name"]
    tflops, vram = gpu_capacity(name, gpu)
    capacity = Amounts(tflops.milli_value(), vram.value())
    available = (gpu.get("status") or {}).get("available")
    if not isinstance(available, Mapping):
        return capacity, None
    obj = f"GPU/{name}"
    free = Amounts(
        checked_quantity(obj, "status.available.tflops", available.get("tflops")).milli_value(),
        checked_quantity(obj, "status.available.vram", available.get("vram")).value(),
    )
    return capacity, free
