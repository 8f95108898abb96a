"""The node agent in a Kubernetes cluster (`tensor-fusion agent`, one per node as a DaemonSet).

Each pass (`tick`):
- finds the node's GPUs through NVML, until it has (a node without a driver yet, say before
  the GPU operator installs it, is not ready and is asked again at the next pass);
- registers them as GPU objects, and the hardware facts of its GPUNode (`status.nodeInfo`),
  at the start, when the kubelet's device-plugin checkpoint changes, and every RESYNC_S;
  a GPU the NVIDIA device plugin has given to a pod gets `status.usedBy:
  nvidia-device-plugin`, and `tensor-fusion` back once released. The GPUNode itself, and the
  pool it is in, are the controller's (it makes one for each node a pool selects): a GPU
  carries no pool label, so it follows its GPUNode's pool;
- keeps the shared regions of the pods bound to the node (`NodePods`): made from gpu-ids and
  the limits (split into tiers by the GPUNode's pool) when a pod comes or changes, removed
  with the pod's spill directory when it is gone; at the start, regions and spill
  directories left by pods deleted while the agent was down are removed;
- records `tf_worker_usage` and `tf_gpu_usage` (`UsageRecorder`) when given somewhere to.

Between passes, `run` prepares the regions of newly bound pods as soon as their change
arrives, so a container rarely starts before its regions exist. The agent never reaps the
slots of dead processes: the shim runs in the pod's pid namespace, not the agent's, and
members free the slots of dead ones as they join. For the same reason it cannot tell whose
spill file is a dead process's: those go with the pod's spill directory.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from tensorfusion.agent.agent_metrics import AgentMetrics
from tensorfusion.agent.device_plugin_checkpoint import (
    DEFAULT_PATH,
    READ_EVERY_S,
    DevicePluginCheckpoint,
)
from tensorfusion.agent.discovery import RegisterReport, host_objects, register
from tensorfusion.agent.host import host_resources
from tensorfusion.agent.node_pods import NodePods
from tensorfusion.agent.nvml import NvmlDevice, read_devices
from tensorfusion.agent.provider_models import declared_tflops
from tensorfusion.agent.regions import PodKey, WorkerRegions, key_of
from tensorfusion.agent.spill import DEFAULT_SPILL_ROOT
from tensorfusion.agent.usage_recorder import UsageRecorder
from tensorfusion.api.gpu_links import OWNER_LABEL, POOL_LABEL, text_at
from tensorfusion.api.names import dns_subdomain_problem
from tensorfusion.api.node import USED_BY_DEVICE_PLUGIN
from tensorfusion.errors import ConfigError, NotFoundError, StoreError, TensorFusionError
from tensorfusion.metrics.gpu_readings import GpuReading, NvmlReader
from tensorfusion.metrics.point import Point
from tensorfusion.store.arguments import checked_seconds
from tensorfusion.store.interface import ClusterStore
from tensorfusion.store.objects import JsonObject

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S: Final = 5.0
RESYNC_S: Final = 60.0
"""Registration runs again at least this often, so a GPU object deleted or edited by hand is
set right without a restart."""
WAIT_SLICE_S: Final = 0.2
"""`run` looks at its stop event at least this often."""
NOT_STARTED: Final = "the first pass has not run yet"


class NvmlUnavailable(TensorFusionError):
    """NVML cannot tell this node's GPUs; the message says why."""


class NodeNvml(Protocol):
    """What the agent asks NVML: the devices (once), and their readings at each pass."""

    def devices(self) -> list[NvmlDevice]:
        """Every device; NvmlUnavailable when there is no driver or no GPU."""
        ...

    def read(self) -> Mapping[str, GpuReading]:
        """The devices' readings by UUID; empty when there is no driver to ask."""
        ...


class SystemNvml:
    """The node's own NVML (nvidia-ml-py over libnvidia-ml.so.1)."""

    def __init__(self) -> None:
        self._reader = NvmlReader()

    def devices(self) -> list[NvmlDevice]:
        try:
            found = read_devices()
        except TensorFusionError as exc:
            raise NvmlUnavailable(str(exc)) from None
        if found is None:
            raise NvmlUnavailable(
                "no NVIDIA driver: NVML cannot be initialised (libnvidia-ml.so.1 is missing "
                "or the driver is not loaded)"
            )
        if not found:
            raise NvmlUnavailable("the NVIDIA driver reports no GPU on this node")
        return found

    def read(self) -> Mapping[str, GpuReading]:
        return self._reader.read()

    def close(self) -> None:
        self._reader.close()


@dataclass(frozen=True)
class KubeAgentConfig:
    """Field errors name the command's flags (`node-name`, `interval`)."""

    node: str
    regions_root: Path
    state_dir: Path
    """Its filesystem's size bounds how much VRAM may spill to disk."""
    checkpoint: Path = DEFAULT_PATH
    spill_root: Path = DEFAULT_SPILL_ROOT
    """Where the workers' spill directories are (the converted pods' disk tier)."""
    interval_s: float = DEFAULT_INTERVAL_S

    def __post_init__(self) -> None:
        if problem := dns_subdomain_problem(self.node):
            raise ConfigError("node-name", problem)
        seconds = checked_seconds("interval", self.interval_s)
        if seconds > READ_EVERY_S:
            raise ConfigError(
                "interval",
                f"must be at most {READ_EVERY_S:g} s (the device-plugin checkpoint is read at "
                f"least that often), got {seconds:g}",
            )


@dataclass
class KubeAgentTick:
    """What one pass saw and did; workers are named `namespace/name`."""

    gpus: int = 0
    workers: int = 0
    registered: RegisterReport | None = None
    """The GPUs' registration, when this pass registered them."""
    prepared: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Workers gone since the last pass, and (at the start) region directories of pods
    deleted while the agent was down."""
    problems: list[str] = field(default_factory=list)
    """One line per thing that could not be done this time (also logged)."""
    points: int = 0


class KubeAgent:
    """One node's agent over `store`. `record` takes each pass's usage points (None: none
    are computed). Not thread-safe, apart from `readiness`: one thread runs it."""

    def __init__(
        self,
        store: ClusterStore,
        config: KubeAgentConfig,
        nvml: NodeNvml,
        *,
        record: Callable[[Sequence[Point]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.nvml = nvml
        self.record = record
        self.clock = clock
        self.metrics = metrics or AgentMetrics()
        self.regions = WorkerRegions(config.regions_root, spill_root=config.spill_root)
        self.pods = NodePods(store, config.node)
        self.checkpoint = DevicePluginCheckpoint(config.checkpoint, clock=clock)
        self.recorder = UsageRecorder(
            self.pods.pods, lambda _pods: self._pooled_gpus(), self.regions, nvml
        )
        self._devices: list[NvmlDevice] | None = None
        self._gpus: list[JsonObject] = []
        """The GPU objects as last registered."""
        self._pool: str | None = None
        self._registered_at: float | None = None
        self._failed: dict[PodKey, tuple[JsonObject, str]] = {}
        """Workers whose regions could not be made, and why: tried again at each pass."""
        self._checkpoint_errors = 0
        self._missing_gpu_node_logged = False
        self._lock = threading.Lock()
        self._not_ready: str | None = NOT_STARTED

    def readiness(self) -> tuple[bool, str]:
        """Whether the agent serves its node (GPUs found and registered, pods followed), and
        why not."""
        with self._lock:
            reason = self._not_ready
        return reason is None, reason or "ready"

    def tick(self, now_ns: int | None = None) -> KubeAgentTick:
        """One pass (see the module). A store that cannot be reached leaves the agent not
        ready until a pass succeeds again; it never ends the agent."""
        started = self.clock()
        result = KubeAgentTick()
        try:
            self._pass(result, time.time_ns() if now_ns is None else now_ns)
        except NvmlUnavailable as exc:
            self._set_not_ready(f"NVML: {exc}")
            result.problems.append(f"NVML: {exc}")
        except StoreError as exc:
            self._set_not_ready(f"the API server: {exc}")
            result.problems.append(f"the API server: {exc}")
            log.warning("the pass stopped: the API server: %s", exc)
        else:
            self._set_not_ready(None)
        self._count(result, self.clock() - started)
        return result

    def sync_workers(self, result: KubeAgentTick | None = None) -> KubeAgentTick:
        """Bring the regions in line with the pods bound to the node: the part of a pass that
        `run` also does as soon as pods change. StoreError when the pods cannot be read."""
        result = result if result is not None else KubeAgentTick()
        first = not self.pods.synced
        pools = self._pools()  # before the changes are taken, which come only once
        changes = self.pods.sync()
        if first:
            result.removed += self.regions.remove_orphans(self.pods.pods)
        for pod in changes.gone:
            self._failed.pop(key_of(pod), None)
            self._attempt(pod, result, remove=True)
        retried = {key_of(pod) for pod in changes.changed}
        retry = [pod for key, (pod, _) in self._failed.items() if key not in retried]
        for pod in [*changes.changed, *retry]:
            self._attempt(pod, result, remove=False, pools=pools)
        result.workers = len(self.pods.pods())
        return result

    def run(self, stop: threading.Event) -> None:
        """Passes every interval until `stop` is set; pod changes in between are acted on
        as they arrive."""
        due = self.clock()
        while not stop.is_set():
            now = self.clock()
            try:
                if now >= due:
                    due = now + self.config.interval_s
                    self.tick()
                elif self.pods.wait(min(due - now, WAIT_SLICE_S)):
                    self.sync_workers()
                    continue
            except Exception:
                # A bug or an outage must not end the DaemonSet's pod: the next pass retries.
                log.exception("the agent's pass failed")
            if not self.pods.synced:
                stop.wait(min(max(due - self.clock(), 0.0), WAIT_SLICE_S))

    # --- one pass --------------------------------------------------------------------------

    def _pass(self, result: KubeAgentTick, now_ns: int) -> None:
        if self._devices is None:
            self._devices = self.nvml.devices()
            log.info("NVML reports %d GPUs on node %s", len(self._devices), self.config.node)
        result.gpus = len(self._devices)
        changed = self.checkpoint.poll()
        if changed:
            log.info("the NVIDIA device plugin holds %s", sorted(self.checkpoint.held) or "none")
        due = self._registered_at is None or self.clock() - self._registered_at >= RESYNC_S
        if changed or due:
            result.registered = self._register(self._devices)
        self.sync_workers(result)
        if self.record is not None:
            try:
                points = self.recorder.points(now_ns)
                self.record(points)
            except Exception as exc:  # usage is best effort: it never stops the pass
                log.warning("usage not recorded: %s", exc)
                result.problems.append(f"usage not recorded: {exc}")
            else:
                result.points = len(points)

    def _register(self, devices: list[NvmlDevice]) -> RegisterReport:
        node = self.config.node

        @functools.cache
        def peaks() -> Callable[[str], int | None]:
            return declared_tflops(self._provider_configs())

        def declared(name: str) -> int | None:
            # ProviderConfigs are read only when a model is missing from the model table.
            return peaks()(name)

        objects = host_objects(
            node, devices, host_resources(self.config.state_dir), declared_tflops=declared
        )
        gpus = [obj for obj in objects if obj["kind"] == "GPU"]
        held = self.checkpoint.held
        for gpu, device in zip(gpus, devices, strict=True):
            del gpu["metadata"]["labels"][POOL_LABEL]
            # The plugin names a device by UUID, or by index with deviceIDStrategy=index.
            if device.uuid in held or str(device.index) in held:
                gpu["status"]["usedBy"] = USED_BY_DEVICE_PLUGIN
        report = register(self.store, gpus)
        self._gpus = gpus
        gpu_node = next(obj for obj in objects if obj["kind"] == "GPUNode")
        self._update_gpu_node(gpu_node["status"]["nodeInfo"])
        self._registered_at = self.clock()
        if report.created or report.updated:
            log.info("%s", report)
        return report

    def _update_gpu_node(self, node_info: Mapping[str, Any]) -> None:
        node = self.config.node
        try:
            stored = self.store.patch("GPUNode", node, {"status": {"nodeInfo": dict(node_info)}})
        except NotFoundError:
            self._pool = None
            if not self._missing_gpu_node_logged:
                log.warning(
                    "no GPUNode %s yet: the controller makes it once a GPUPool's "
                    "nodeManagerConfig.nodeSelector selects this node; until then no work is "
                    "placed on its GPUs",
                    node,
                )
                self._missing_gpu_node_logged = True
            return
        self._missing_gpu_node_logged = False
        self._pool = text_at(stored, "metadata", "labels", OWNER_LABEL)

    def _provider_configs(self) -> list[JsonObject]:
        try:
            return self.store.list("ProviderConfig")
        except StoreError as exc:
            log.warning("ProviderConfigs not read, no declared TFLOPS: %s", exc)
            return []

    def _attempt(
        self,
        pod: JsonObject,
        result: KubeAgentTick,
        *,
        remove: bool,
        pools: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Prepare (or remove) one worker's regions; a failure is logged and, for a
        preparation, tried again next pass: one broken pod never stops the others."""
        namespace, name = key_of(pod)
        try:
            if remove:
                self.regions.remove(pod)
            else:
                self.regions.prepare(pod, self._pooled_gpus(), pools)
        except Exception as exc:
            # Deliberately broad: bad annotations, a full disk, a name too long.
            problem = f"{namespace}/{name}: {exc}"
            result.problems.append(problem)
            if remove:
                log.warning("worker %s: its regions not removed", problem)
                return
            if self._failed.get((namespace, name), (None, None))[1] != problem:
                log.warning("worker %s (tried again at each pass)", problem)
            self._failed[(namespace, name)] = (pod, problem)
            return
        self._failed.pop((namespace, name), None)
        (result.removed if remove else result.prepared).append(f"{namespace}/{name}")

    def _pools(self) -> dict[str, JsonObject]:
        """The GPUNode's pool by name, whose oversubscription splits limits into tiers; none
        (nothing paged out) without one. StoreError when it cannot be read: the regions then
        keep the limits they have."""
        if self._pool is None:
            return {}
        try:
            return {self._pool: self.store.get("GPUPool", self._pool)}
        except NotFoundError:
            return {}

    def _pooled_gpus(self) -> list[JsonObject]:
        """The registered GPUs with their GPUNode's pool, for the usage rows' pool tag."""
        if self._pool is None:
            return self._gpus
        return [_in_pool(gpu, self._pool) for gpu in self._gpus]

    def _set_not_ready(self, reason: str | None) -> None:
        with self._lock:
            if reason != self._not_ready and reason is not None:
                log.warning("not ready: %s", reason)
            self._not_ready = reason

    def _count(self, result: KubeAgentTick, seconds: float) -> None:
        metrics = self.metrics
        metrics.ticks.inc()
        metrics.tick_seconds.observe(seconds)
        metrics.gpus.set(result.gpus)
        metrics.workers.set(result.workers)
        metrics.worker_problems.set(len(self._failed))
        used = sum(
            1 for gpu in self._gpus if text_at(gpu, "status", "usedBy") == USED_BY_DEVICE_PLUGIN
        )
        metrics.device_plugin_gpus.set(used)
        metrics.checkpoint_errors.inc(self.checkpoint.errors - self._checkpoint_errors)
        self._checkpoint_errors = self.checkpoint.errors
        metrics.ready.set(1 if self.readiness()[0] else 0)


def _in_pool(gpu: JsonObject, pool: str) -> JsonObject:
    metadata = gpu["metadata"]
    return {**gpu, "metadata": {**metadata, "labels": {**metadata["labels"], POOL_LABEL: pool}}}
