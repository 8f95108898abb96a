"""Capacity totals of a pool or a cluster: the sums of the same fields over its members'
statuses (GPUNodes for a pool, GPUPools for a cluster)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tensorfusion.api.gpu_capacity import checked_quantity
from tensorfusion.scheduler.fleet_generator import capacity_status

_TFLOPS_FIELDS = ("totalTFlops", "virtualTFlops", "availableTFlops")
_VRAM_FIELDS = ("totalVRAM", "virtualVRAM", "availableVRAM")


def summed_capacity(members: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """The capacity fields summed over (object label, status) pairs; a member that has not
    reported a field adds nothing to it. FleetError names a malformed one."""
    tflops = [0, 0, 0]
    vram = [0, 0, 0]
    for label, status in members:
        for position, (tf_field, vram_field) in enumerate(
            zip(_TFLOPS_FIELDS, _VRAM_FIELDS, strict=True)
        ):
            if status.get(tf_field) is not None:
                tflops[position] += checked_quantity(
                    label, f"status.{tf_field}", status[tf_field]
                ).milli_value()
            if status.get(vram_field) is not None:
                vram[position] += checked_quantity(
                    label, f"status.{vram_field}", status[vram_field]
                ).value()
    return capacity_status((tflops[0], vram[0]), (tflops[1], vram[1]), (tflops[2], vram[2]))
