"""The kubelet's device-plugin checkpoint, in its real JSON format (kubelet >= 1.21 keys
DeviceIDs by NUMA node, older ones write a plain list): which GPUs the NVIDIA device plugin
holds, followed on change and every 30 s, with a malformed file never changing what is held."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.agent.device_plugin_checkpoint import (
    READ_EVERY_S,
    DevicePluginCheckpoint,
    held_devices,
)
from tensorfusion.errors import ConfigError

GPU_A = "GPU-6d6f636b-6375-6461-0000-000000000000"
GPU_B = "GPU-6d6f636b-6375-6461-0000-000000000001"


def checkpoint(*entries: dict[str, Any]) -> str:
    """A checkpoint as the kubelet writes it, with the given pod device entries."""
    return json.dumps(
        {
            "Data": {
                "PodDeviceEntries": list(entries),
                "RegisteredDevices": {"nvidia.com/gpu": [GPU_A, GPU_B]},
            },
            "Checksum": 2366546817,
        }
    )


def entry(device_ids: Any, resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    return {
        "PodUID": "0b7c1e3e-3c55-4b5e-9a57-8e1d2c7e9f10",
        "ContainerName": "cuda",
        "ResourceName": resource,
        "DeviceIDs": device_ids,
        "AllocResp": "CiQKFk5WSURJQV9WSVNJQkxFX0RFVklDRVMSCkdQVS0w",
    }


def problem_of(followed: DevicePluginCheckpoint) -> str | None:
    return followed.problem


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_numa_keyed_and_plain_device_ids_are_read() -> None:
    text = checkpoint(entry({"0": [GPU_A], "1": [f"{GPU_B}::3"]}), entry({"0": ["x"]}, "other"))
    assert held_devices(text, "ckpt") == {GPU_A, GPU_B}
    assert held_devices(checkpoint(entry([GPU_B])), "ckpt") == {GPU_B}
    # Go writes an empty slice as null.
    assert held_devices(checkpoint().replace("[]", "null"), "ckpt") == set()


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("{", "ckpt", "not JSON"),
        ("[]", "ckpt: the document", "must be an object, got list"),
        ('"Data"', "ckpt: the document", "must be an object"),
        ("{}", "ckpt: Data", "required"),
        ('{"Data": {"PodDeviceEntries": {}}}', "ckpt: Data.PodDeviceEntries", "a list"),
        (checkpoint({"DeviceIDs": []}), "ckpt: Data.PodDeviceEntries[0].ResourceName", "required"),
        (checkpoint(entry(7)), "ckpt: Data.PodDeviceEntries[0].DeviceIDs", "got int"),
        (checkpoint(entry({"0": [1]})), "ckpt: Data.PodDeviceEntries[0].DeviceIDs['0'][0]", ""),
    ],
)
def test_a_malformed_checkpoint_names_the_file_and_field(
    text: str, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        held_devices(text, "ckpt")
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_change_is_read_and_a_bad_file_keeps_the_last_good_reading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "kubelet_internal_checkpoint"
    clock = Clock()
    followed = DevicePluginCheckpoint(path, clock=clock)
    assert followed.poll() is False  # missing: nothing held, nothing changed
    assert followed.held == frozenset()
    path.write_text(checkpoint(entry({"0": [GPU_A]})))
    assert followed.poll() is True
    assert followed.held == {GPU_A}
    assert followed.poll() is False  # unchanged and read just now
    path.write_text('{"Data": {"PodDeviceEntries": [{"ResourceName": 5}]}}')
    with caplog.at_level(logging.ERROR):
        assert followed.poll() is False
    assert followed.held == {GPU_A}
    assert followed.problem is not None
    assert str(path) in followed.problem
    assert "Data.PodDeviceEntries[0].ResourceName: must be a string" in caplog.text
    assert followed.errors == 1
    path.write_text(checkpoint())
    assert followed.poll() is True
    assert followed.held == frozenset()
    assert problem_of(followed) is None  # read again after the poll that narrowed it
    path.unlink()
    assert followed.poll() is False


def test_an_unchanged_stamp_is_read_again_after_30_s(tmp_path: Path) -> None:
    """A write within the clock's resolution keeps mtime and size: the periodic read sees it."""
    path = tmp_path / "checkpoint"
    path.write_text(checkpoint(entry([GPU_A])))
    clock = Clock()
    followed = DevicePluginCheckpoint(path, clock=clock)
    assert followed.poll() is True
    stat = path.stat()
    path.write_text(checkpoint(entry([GPU_B])))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert followed.poll() is False
    clock.now += READ_EVERY_S
    assert followed.poll() is True
    assert followed.held == {GPU_B}
