"""The capacity rule, stricter than upstream: on each GPU the sum of requests fits the
physical TFLOPS and VRAM, and the sum of limits fits the virtual capacity that the pool's
oversubscription grants. Integer arithmetic throughout, so the bound is exact to the byte."""

from __future__ import annotations

from dataclasses import dataclass

from tensorfusion.api.pool import Oversubscription


@dataclass(frozen=True)
class HostShare:
    """The host RAM and local disk one GPU may borrow for VRAM expansion: the node's totals
    (as its GPUNode reports them) split evenly among its GPUs. None means not reported, and
    then nothing can be borrowed: a budget nobody measured is not granted."""

    ram_bytes: int | None
    disk_bytes: int | None


def virtual_tflops(physical_milli: int, oversubscription: Oversubscription) -> int:
    """Milli-TFLOPS the limits on one GPU may add up to: physical x tflopsOversellRatio/100."""
    return physical_milli * oversubscription.tflops_oversell_ratio // 100


def virtual_vram(physical_bytes: int, oversubscription: Oversubscription, host: HostShare) -> int:
    """Bytes the VRAM limits on one GPU may add up to: physical VRAM plus the expansion into
    host memory and disk, each the pool's percentage of the physical VRAM but never more than
    the GPU's share of what the host has."""
    to_memory = physical_bytes * oversubscription.vram_expand_to_host_mem // 100
    to_disk = physical_bytes * oversubscription.vram_expand_to_host_disk // 100
    return physical_bytes + min(to_memory, host.ram_bytes or 0) + min(to_disk, host.disk_bytes or 0)


def host_share(ram_bytes: int | None, disk_bytes: int | None, gpus_on_node: int) -> HostShare:
    count = max(gpus_on_node, 1)
    return HostShare(
        None if ram_bytes is None else ram_bytes // count,
        None if disk_bytes is None else disk_bytes // count,
    )
