"""The allocator's records: the static facts of a GPU, what a pod holds on each of its GPUs,
and what a rebuild from the store restored or could not."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GpuRecord:
    """The static facts of one GPU."""

    name: str
    node: str
    pool: str | None
    model: str | None
    uuid: str | None = None
    index: int | None = None
    numa_node: int | None = None
    nvlink_peers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GpuShare:
    """What one pod holds on one GPU: milli-TFLOPS and bytes."""

    tflops_request: int
    tflops_limit: int
    vram_request: int
    vram_limit: int


@dataclass(frozen=True, slots=True)
class Allocation:
    uid: str
    namespace: str
    name: str
    gpus: tuple[str, ...]
    shares: tuple[GpuShare, ...]
    qos: str = "medium"


@dataclass
class RebuildReport:
    """What a rebuild restored and what it could not: nothing is dropped silently."""

    restored: int = 0
    vanished: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """(pod namespace/name, the GPU names it holds that no longer exist)."""
    invalid: list[tuple[str, str]] = field(default_factory=list)
    """(pod namespace/name, why its allocation could not be read)."""
    overcommitted: list[str] = field(default_factory=list)
    """GPUs whose restored allocations exceed the capacity rule (capacity shrank, or the
    pods were placed by something that did not enforce it)."""

    def problems(self) -> list[str]:
        lines = [
            f"{pod}: holds GPUs that no longer exist: {', '.join(g)}" for pod, g in self.vanished
        ]
        lines += [f"{pod}: {why}" for pod, why in self.invalid]
        lines += [f"GPU {name}: allocations exceed its capacity" for name in self.overcommitted]
        return lines
