"""What NVML says about this host's GPUs right now, for the agent's `tf_gpu_usage` rows.

Memory is required of every device; utilization, temperature, power and PCIe throughput are
taken where the driver reports them (a driver or card without a query, or a library without
the entry point, leaves that figure out rather than failing the device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import pynvml  # type: ignore[import-untyped]  # nvidia-ml-py ships no type information

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    uuid: str
    memory_used: int
    memory_total: int
    utilization: float | None
    """Percent of NVML's last sample period the GPU was busy."""
    temperature: float | None
    """Degrees Celsius, at the die."""
    power_watts: float | None
    pcie_rx_kbps: float | None
    pcie_tx_kbps: float | None


class GpuReader(Protocol):
    def read(self) -> Mapping[str, GpuReading]:
        """This host's GPUs by UUID; empty when there is no driver to ask."""


class NvmlReader:
    """A `GpuReader` over NVML. The library is initialised on the first read and kept until
    `close`; a host without a driver is found out once and then read as having no GPU."""

    def __init__(self) -> None:
        self._open: bool | None = None
        self._reported: set[str] = set()

    def read(self) -> dict[str, GpuReading]:
        if not self._start():
            return {}
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as exc:
            self._report(f"NVML: cannot count the GPUs: {exc}")
            return {}
        readings = {}
        for index in range(count):
            try:
                reading = _reading(pynvml.nvmlDeviceGetHandleByIndex(index))
            except pynvml.NVMLError as exc:
                self._report(f"NVML: cannot read GPU {index}: {exc}")
                continue
            readings[reading.uuid] = reading
        return readings

    def close(self) -> None:
        if self._open:
            pynvml.nvmlShutdown()
        self._open = None

    def _start(self) -> bool:
        if self._open is None:
            try:
                pynvml.nvmlInit()
                self._open = True
            except pynvml.NVMLError as exc:
                log.info("no NVIDIA driver found (NVML: %s): GPU usage comes from workers", exc)
                self._open = False
        return self._open

    def _report(self, problem: str) -> None:
        """Once per distinct problem: the same broken device would otherwise fill the log
        at every interval."""
        if problem not in self._reported:
            self._reported.add(problem)
            log.warning("%s", problem)


def _reading(handle: object) -> GpuReading:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    utilization = _optional(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    power_mw = _optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
    return GpuReading(
        uuid=str(pynvml.nvmlDeviceGetUUID(handle)),
        memory_used=int(memory.used),
        memory_total=int(memory.total),
        utilization=utilization,
        temperature=_optional(
            lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        ),
        power_watts=power_mw / 1000 if power_mw is not None else None,
        pcie_rx_kbps=_optional(
            lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, pynvml.NVML_PCIE_UTIL_RX_BYTES)
        ),
        pcie_tx_kbps=_optional(
            lambda: pynvml.nvmlDeviceGetPcieThroughput(handle, pynvml.NVML_PCIE_UTIL_TX_BYTES)
        ),
    )


def _optional(query: Callable[[], float]) -> float | None:
    try:
        return float(query())
    except pynvml.NVMLError:
        return None
