"""A node agent's usage recording for the worker listing's tests: the recorder's test node
(`Host`: real shared regions joined by this process, the real `UsageRecorder`) on the given
GPU objects, its `tf_worker_usage` rows written by `GreptimeSink` to the GreptimeDB stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorfusion._native import ShmRegion, ShmSlot
from tensorfusion.agent.regions import SUFFIX
from tensorfusion.metrics.greptime_env import greptime_from_env
from tensorfusion.metrics.greptime_sink import GreptimeSink
from tests.unit.agent.test_usage_recorder import Host
from tests.unit.metrics.greptime_standin import StandIn


def greptime_sink(standin: StandIn) -> GreptimeSink:
    """A sink on the stand-in, configured from the environment the chart gives the agent
    and the controller."""
    values = greptime_from_env(standin.environ())
    assert values is not None
    return GreptimeSink(values, timeout_s=5)


class RecordingAgent(Host):
    def __init__(self, root: Path, sink: GreptimeSink, gpus: list[dict[str, Any]]) -> None:
        super().__init__(root)
        self.gpus = gpus
        self.sink = sink

    def place(self, pod: dict[str, Any]) -> None:
        """The regions of a bound pod, made as the agent makes them before its processes
        start; from now on the pod's rows are recorded."""
        self.regions.prepare(pod, self.gpus)
        self.pods.append(pod)

    def run(
        self, pod: dict[str, Any], gpu: str, vram: int = 0, **counts: int
    ) -> tuple[ShmRegion, ShmSlot]:
        """A process of `pod` on `gpu` that charges `vram` bytes, counts `counts` (shim
        counter names) and stays until `close`; its region and slot, to count more."""
        region = ShmRegion.open(self.regions.directory(pod) / f"{gpu}{SUFFIX}")
        return region, self.join(region, vram, **counts)

    def record(self, now_ns: int) -> None:
        self.sink.write(self.recorder.points(now_ns))
