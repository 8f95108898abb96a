"""This host's GPUs as NVML reports them (through nvidia-ml-py), read once at start.

Identity, name and memory are required of every device; NUMA node and NVLink peers are
reported where the driver offers them (older drivers lack the NUMA query, PCIe cards have no
NVLink) and left out otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no type information

from tensorfusion.errors import TensorFusionError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NvmlDevice:
    index: int
    """NVML's index, which is PCI bus order."""
    uuid: str
    name: str
    memory_bytes: int
    numa_node: int | None
    nvlink_peers: tuple[int, ...]
    """Indices of the devices this one reaches over NVLink (directly or through NVSwitches)."""


def read_devices() -> list[NvmlDevice] | None:
    """Every device NVML sees; None when there is no driver to ask (no library, or it does
    not initialise). TensorFusionError when the driver answers but a device cannot be read."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.info("no NVIDIA driver found (NVML: %s)", exc)
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return [_device(index, handles) for index in range(len(handles))]
    except pynvml.NVMLError as exc:
        raise TensorFusionError(f"NVML: cannot read the GPUs of this host: {exc}") from None
    finally:
        pynvml.nvmlShutdown()


def _device(index: int, handles: list[object]) -> NvmlDevice:
    handle = handles[index]
    return NvmlDevice(
        index=index,
        uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
        name=str(pynvml.nvmlDeviceGetName(handle)),
        memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
        numa_node=_numa_node(handle),
        nvlink_peers=tuple(
            other
            for other, peer in enumerate(handles)
            if other != index and _nvlinked(handle, peer)
        ),
    )


def _numa_node(handle: object) -> int | None:
    try:
        node = int(pynvml.nvmlDeviceGetNumaNodeId(handle))
    except pynvml.NVMLError:
        return None
    # -1 (as an unsigned or signed int) means the platform has no NUMA information.
    return node if 0 <= node < 1 << 16 else None


def _nvlinked(handle: object, peer: object) -> bool:
    try:
        status = pynvml.nvmlDeviceGetP2PStatus(handle, peer, pynvml.NVML_P2P_CAPS_INDEX_NVLINK)
    except pynvml.NVMLError:
        return False
    return bool(status == pynvml.NVML_P2P_STATUS_OK)
