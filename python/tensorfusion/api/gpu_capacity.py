"""A GPU object's capacity (`status.capacity.tflops` and `.vram`) and the host sizes of a
GPUNode, read the one way the scheduler, the agent and the recorders all need: an exact
quantity, or FleetError naming the object and the field."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import FleetError, QuantityError


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Quantity:
    # A fleet repeats a handful of sizes over tens of thousands of GPUs.
    return Quantity.parse(text)


def checked_quantity(obj: str, field: str, value: object) -> Quantity:
    """`value` as a non-negative quantity; `obj` names the object ("GPU/node-1-gpu-0")."""
    if value is None:
        raise FleetError(obj, field, "required")
    try:
        quantity = _parse(value) if isinstance(value, str) else Quantity.coerce(value)
    except QuantityError as exc:
        raise FleetError(obj, field, str(exc)) from None
    if quantity.is_negative:
        raise FleetError(obj, field, "must not be negative")
    return quantity


def gpu_capacity(name: str, gpu: Mapping[str, Any]) -> tuple[Quantity, Quantity]:
    """(TFLOPS, VRAM bytes) of the GPU object `gpu` named `name`."""
    capacity = (gpu.get("status") or {}).get("capacity") or {}
    obj = f"GPU/{name}"
    return (
        checked_quantity(obj, "status.capacity.tflops", capacity.get("tflops")),
        checked_quantity(obj, "status.capacity.vram", capacity.get("vram")),
    )
