"""Reading devices through pynvml, with the driver's failures that the mock NVML cannot
produce (a stand-in module answers instead); tests/native/test_agent_nvml.py reads the mock
library itself."""

from __future__ import annotations

from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from tensorfusion.agent import nvml
from tensorfusion.agent.nvml import NvmlDevice, read_devices
from tensorfusion.errors import TensorFusionError


class FakeNvml:
    """The pynvml calls the agent makes, over a list of device names; `failing` maps a call's
    name to the NVML error code it returns."""

    NVMLError = pynvml.NVMLError
    NVML_P2P_CAPS_INDEX_NVLINK = pynvml.NVML_P2P_CAPS_INDEX_NVLINK
    NVML_P2P_STATUS_OK = pynvml.NVML_P2P_STATUS_OK

    def __init__(self, names: list[str], failing: dict[str, int] | None = None) -> None:
        self.names = names
        self.failing = failing or {}
        self.initialised = 0

    def _call(self, name: str) -> None:
        if name in self.failing:
            raise pynvml.NVMLError(self.failing[name])

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        self._call("nvmlDeviceGetUUID")
        return f"GPU-{handle:08d}"

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.names[handle]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return type("Memory", (), {"total": (handle + 1) << 30})()

    def nvmlDeviceGetNumaNodeId(self, handle: int) -> int:
        self._call("nvmlDeviceGetNumaNodeId")
        return -1 if handle == 0 else handle

    def nvmlDeviceGetP2PStatus(self, first: int, second: int, index: int) -> int:
        self._call("nvmlDeviceGetP2PStatus")
        assert index == pynvml.NVML_P2P_CAPS_INDEX_NVLINK
        # Devices 0-1 and 2-3 are bridged pairs.
        return pynvml.NVML_P2P_STATUS_OK if first // 2 == second // 2 else 5


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    stand_in = FakeNvml(["NVIDIA L4"] * 4)
    monkeypatch.setattr(nvml, "pynvml", stand_in)
    return stand_in


def test_devices_with_numa_nodes_and_nvlink_pairs(fake: FakeNvml) -> None:
    devices = read_devices()
    assert devices is not None
    assert devices[0] == NvmlDevice(0, "GPU-00000000", "NVIDIA L4", 1 << 30, None, (1,))
    assert [device.numa_node for device in devices] == [None, 1, 2, 3]
    assert [device.nvlink_peers for device in devices] == [(1,), (0,), (3,), (2,)]
    assert fake.initialised == 0


@pytest.mark.parametrize(
    "code",
    [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED],
)
def test_no_driver_is_none_and_said(
    fake: FakeNvml, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    fake.failing["nvmlInit"] = code
    with caplog.at_level("INFO", logger="tensorfusion.agent.nvml"):
        assert read_devices() is None
    assert "no NVIDIA driver" in caplog.text
    assert str(pynvml.NVMLError(code)) in caplog.text


@pytest.mark.parametrize(
    "code", [pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND]
)
def test_without_the_optional_queries_numa_and_nvlink_are_left_out(
    fake: FakeNvml, code: int
) -> None:
    fake.failing.update(nvmlDeviceGetNumaNodeId=code, nvmlDeviceGetP2PStatus=code)
    devices = read_devices()
    assert devices is not None
    assert [(d.numa_node, d.nvlink_peers) for d in devices] == [(None, ())] * 4


def test_a_device_that_cannot_be_read_is_an_error(fake: FakeNvml) -> None:
    fake.failing["nvmlDeviceGetUUID"] = pynvml.NVML_ERROR_GPU_IS_LOST
    with pytest.raises(
        TensorFusionError, match="NVML: cannot read the GPUs of this host: GPU is lost"
    ):
        read_devices()
    assert fake.initialised == 0
