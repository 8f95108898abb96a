"""The shared regions of the workers placed on this host: one file per worker and GPU, under
`<root>/<namespace>/<pod name>/<gpu name>.shm` (the path a converted pod mounts with
`subPathExpr: $(POD_NAMESPACE)/$(POD_NAME)`), and beside them a link `device-<i>` to the
region of the worker's i-th GPU in PCI bus order, which is the CUDA device order in a
container given those GPUs (NVIDIA_VISIBLE_DEVICES with CUDA_DEVICE_ORDER=PCI_BUS_ID): a pod's
env is written at admission, before its GPUs are known, so it names its regions by these
links.

Each limit is split into the parts that may live on the device, in pinned host memory and on
disk by the pool of the GPU (`vram_tiers`); where a spill root is given, each worker also gets
a directory there for its disk tier (`spill`), removed with its regions.

The agent creates each region with the worker's per-GPU limits before the worker's processes
start; the shim in those processes joins it (TF_SHM_PATH_<i>) and charges VRAM and counts
launches there; the agent reads the counters back and frees the slots of dead processes.
A region names its worker by the pod's uid (TF_WORKER_NAME): unique even when a pod of the
same name comes back, and always within the region's 127 bytes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from tensorfusion._native import ShmRegion
from tensorfusion.agent.spill import (
    SPILL_DIR_ENV,
    is_spill_directory,
    prepare_directory,
    remove_dead_files,
)
from tensorfusion.agent.vram_tiers import pool_expansion, tier_budget
from tensorfusion.api.annotations import GPU_IDS, parse_workload_request
from tensorfusion.api.gpu_capacity import gpu_capacity
from tensorfusion.api.gpu_links import gpu_pool_name, text_at
from tensorfusion.api.quantity import Quantity
from tensorfusion.errors import AnnotationError, ConfigError, FleetError
from tensorfusion.scheduler.pod_keys import pod_key
from tensorfusion.shm_region import RegionSnapshot, read_region, snapshot

log = logging.getLogger(__name__)

DEFAULT_SLOTS = 64
"""Processes per worker and GPU; a region refuses more (the shim then enforces its limit
within the process)."""
MAX_SLOTS = 4096
SUFFIX = ".shm"
DEVICE_LINK = "device-{ordinal}"
"""The link to the region of a worker's GPU by its device ordinal."""
_NAME_MAX = 255
"""Bytes in one file name (Linux NAME_MAX)."""


PodKey = tuple[str, str]
"""(namespace, name): what a worker's region directory is named by."""


@dataclass(frozen=True)
class _Limits:
    vram_limit: int
    tflops_limit: float
    tflops_request: float
    gpu_peak_tflops: float
    host_limit: int
    disk_limit: int


class WorkerRegions:
    """Creates, reads and removes workers' regions under `root`. Safe to share between the
    agent's thread and the server's: changes to the files happen under one lock. `spill_root`
    holds the workers' spill directories (None: the agent keeps none)."""

    def __init__(
        self, root: Path, slots: int = DEFAULT_SLOTS, *, spill_root: Path | None = None
    ) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or not 1 <= slots <= MAX_SLOTS:
            raise ConfigError(
                "slots", f"must be a whole number from 1 to {MAX_SLOTS}, got {slots!r}"
            )
        self.root = root
        self.slots = slots
        self.spill_root = spill_root
        self._lock = threading.Lock()

    def directory(self, pod: Mapping[str, Any]) -> Path:
        """Where the regions of `pod` live."""
        namespace, name = key_of(pod)
        for field, part in (("metadata.namespace", namespace), ("metadata.name", name)):
            if len(part.encode()) > _NAME_MAX:
                raise ConfigError(
                    field, f"must fit {_NAME_MAX} bytes to name the worker's shared regions"
                )
        return self.root / namespace / name

    def spill_directory(self, pod: Mapping[str, Any]) -> Path | None:
        """Where the worker's VRAM paged out to disk lives; None without a spill root."""
        if self.spill_root is None:
            return None
        return self.spill_root / self.directory(pod).relative_to(self.root)

    def prepare(
        self,
        pod: Mapping[str, Any],
        gpus: Iterable[Mapping[str, Any]],
        pools: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, str]:
        """Creates (or keeps, with its limits set again) a region on each GPU the pod is bound
        to, and returns the environment its processes need. `gpus` may hold other GPUs too;
        the pod's gpu-ids annotation decides which and in what order. `pools` are the GPUPool
        objects by name: a GPU's pool (its pool label) decides how much of the limit may be
        paged out; a GPU of no pool given pages nothing. Every GPU is checked before any
        region is made."""
        metadata = pod.get("metadata") or {}
        request = parse_workload_request(
            metadata.get("labels") or {}, metadata.get("annotations") or {}
        )
        if not request.gpu_ids:
            raise AnnotationError(GPU_IDS, "missing: the worker is not bound to GPUs yet")
        by_name = {text_at(gpu, "metadata", "name"): gpu for gpu in gpus}
        planned = []
        for gpu_id in request.gpu_ids:
            gpu = by_name.get(gpu_id)
            if gpu is None:
                raise AnnotationError(GPU_IDS, f"names GPU {gpu_id!r}, which is not registered")
            peak, vram, index = _gpu_facts(gpu_id, gpu)
            vram_limit = request.vram_limit or vram
            pool = (pools or {}).get(gpu_pool_name(gpu, None) or "")
            budget = tier_budget(vram_limit, pool_expansion(pool))
            limits = _Limits(
                vram_limit=vram_limit,
                tflops_limit=_tflops(
                    request.tflops_limit, request.compute_percent_limit, peak, peak
                ),
                tflops_request=_tflops(
                    request.tflops_request, request.compute_percent_request, peak, 0.0
                ),
                gpu_peak_tflops=peak,
                host_limit=budget.host,
                disk_limit=budget.disk,
            )
            planned.append((gpu_id, index, limits))
        worker, _, _ = pod_key(metadata)
        directory = self.directory(pod)
        spill = self.spill_directory(pod)
        env = {
            # CUDA numbers devices fastest first unless told otherwise; NVML and the GPU
            # objects number them in PCI bus order.
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(str(index) for _, index, _ in planned),
            "TF_WORKER_NAME": worker,
        }
        with self._lock:
            if spill is not None:
                # Before the regions: a container waits for those, and then finds both.
                prepare_directory(spill)
                env[SPILL_DIR_ENV] = str(spill)
            directory.mkdir(parents=True, exist_ok=True)
            for ordinal, (gpu_id, _, limits) in enumerate(planned):
                path = directory / f"{gpu_id}{SUFFIX}"
                self._ensure(path, worker, limits)
                env[f"TF_SHM_PATH_{ordinal}"] = str(path)
                env[f"TF_VRAM_LIMIT_{ordinal}"] = str(limits.vram_limit)
                env[f"TF_VRAM_HOST_LIMIT_{ordinal}"] = str(limits.host_limit)
                env[f"TF_VRAM_DISK_LIMIT_{ordinal}"] = str(limits.disk_limit)
                env[f"TF_TFLOPS_LIMIT_{ordinal}"] = repr(limits.tflops_limit)
                env[f"TF_GPU_PEAK_TFLOPS_{ordinal}"] = repr(limits.gpu_peak_tflops)
            by_bus = sorted(planned, key=lambda plan: plan[1])
            for ordinal, (gpu_id, _, _) in enumerate(by_bus):
                _link(directory / DEVICE_LINK.format(ordinal=ordinal), f"{gpu_id}{SUFFIX}")
        return env

    def usage(self, pod: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the worker's processes use and did, summed over its GPUs; None before any of
        its regions exists. `processes` counts distinct live processes; `vramTiers` splits
        `vram` by where it lives now."""
        snapshots = self._snapshots(pod)
        if snapshots is None:
            return None
        slots = [slot for snap in snapshots for slot in snap.slots]
        return {
            "vram": sum(snap.total_bytes for snap in snapshots),
            "processes": len({slot.pid for slot in slots}),
            "launches": sum(slot.launches for slot in slots),
            "throttledLaunches": sum(slot.throttled_launches for slot in slots),
            "busyNs": sum(slot.busy_ns for slot in slots),
            "pagesEvicted": sum(slot.pages_evicted for slot in slots),
            "pagesResumed": sum(slot.pages_resumed for slot in slots),
            "vramTiers": region_tiers(snapshots),
        }

    def live_members(self, pod: Mapping[str, Any]) -> set[int]:
        """Pids of the processes holding a slot in any of the worker's regions, after the
        slots of dead ones are freed."""
        return {slot.pid for snap in self._snapshots(pod) or () for slot in snap.slots}

    def remove(self, pod: Mapping[str, Any]) -> None:
        """Deletes the worker's regions and their directory, and its spill directory;
        processes still mapping them keep their mapping, nothing new can join. Missing files
        are fine."""
        with self._lock:
            _remove_directory(self.directory(pod))
            spill = self.spill_directory(pod)
            if spill is not None:
                _remove_directory(spill)

    def remove_dead_spill_files(self) -> list[Path]:
        """Removes the spill files of processes that are gone (see `spill.remove_dead_files`:
        only for an agent in the workers' pid namespace); returns them."""
        if self.spill_root is None:
            return []
        with self._lock:
            return remove_dead_files(self.spill_root)

    def remove_orphans(self, list_pods: Callable[[], Iterable[Mapping[str, Any]]]) -> list[str]:
        """Removes region and spill directories that belong to no pod (a worker deleted while
        the agent was down); returns their names. The pods are listed under the lock that
        `prepare` holds, so the regions of a worker created meanwhile are never taken for
        orphans. Only directories holding nothing but region (or spill) files are touched: a
        misconfigured root loses nothing else."""
        removed: list[str] = []
        with self._lock:
            keep = {key_of(pod) for pod in list_pods()}
            removed += _remove_unkept(self.root, keep, _is_region_directory)
            if self.spill_root is not None:
                spilled = _remove_unkept(self.spill_root, keep, is_spill_directory)
                removed += [name for name in spilled if name not in removed]
        return removed

    def _ensure(self, path: Path, worker: str, limits: _Limits) -> None:
        """A valid region of `worker` at `path` with `limits`, replacing a corrupt one or one
        left by an earlier worker of the same name."""
        try:
            current = snapshot(ShmRegion.open(path))
        except FileNotFoundError:
            current = None
        except ValueError as exc:
            log.warning("%s; replacing it", exc)
            current = None
            path.unlink()
        if current is not None and current.worker != worker:
            log.warning("%s belongs to an earlier worker %s; replacing it", path, current.worker)
            current = None
            path.unlink()
        if current is None:
            ShmRegion.create(path, slots=self.slots, worker=worker, **vars(limits))
        elif _limits_of(current) != limits:
            # Only on a change: each new generation makes the members reload their limits.
            ShmRegion.open(path).set_limits(**vars(limits))

    def snapshots(
        self, pod: Mapping[str, Any], *, reap: bool = True
    ) -> list[tuple[str, RegionSnapshot]] | None:
        """(GPU name, snapshot) for each of the worker's regions; None before any exists.
        `reap` first frees the slots of dead processes (the agent's pass does; a reader that
        only reports leaves it to the agent)."""
        paths = sorted(self.directory(pod).glob(f"*{SUFFIX}"))
        if not paths:
            return None
        snapshots = []
        for path in paths:
            try:
                snapshots.append((path.name.removesuffix(SUFFIX), read_region(path, reap=reap)))
            except FileNotFoundError:
                continue  # removed meanwhile: the worker was released
            except (OSError, ValueError) as exc:
                # Unreadable counts as empty: a broken file must not keep a worker alive.
                log.warning("cannot read %s: %s", path, exc)
        return snapshots

    def _snapshots(self, pod: Mapping[str, Any]) -> list[RegionSnapshot] | None:
        found = self.snapshots(pod)
        return None if found is None else [snapshot for _, snapshot in found]


def key_of(pod: Mapping[str, Any]) -> PodKey:
    _, namespace, name = pod_key(pod.get("metadata") or {})
    return namespace, name


def _gpu_facts(name: str, gpu: Mapping[str, Any]) -> tuple[float, int, int]:
    """The GPU's peak TFLOPS, VRAM bytes and index."""
    tflops, vram = gpu_capacity(name, gpu)
    if tflops.exact <= 0:
        raise FleetError(
            f"GPU/{name}", "status.capacity.tflops", "must be > 0: it is the peak limits pace to"
        )
    index = (gpu.get("status") or {}).get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FleetError(
            f"GPU/{name}", "status.index", f"must be a device index >= 0, got {index!r}"
        )
    return float(tflops.exact), vram.value(), index


def _tflops(
    tflops: Quantity | None, percent: Fraction | None, peak: float, default: float
) -> float:
    """An amount per GPU given as TFLOPS or as a percentage of the GPU; `default` when
    neither is (no TFLOPS limit: the whole GPU; no request: nothing guaranteed)."""
    if tflops is not None:
        return float(tflops.exact)
    if percent is not None:
        return float(percent) * peak / 100
    return default


def vram_tiers(total: int, host: int, disk: int) -> dict[str, int]:
    """A worker's charged VRAM by where it lives now (`vramTiers` of /api/workers). The
    gauges are read apart from the total, so the device's part is never shown below 0."""
    return {"device": max(total - host - disk, 0), "host": host, "disk": disk}


def region_tiers(regions: Sequence[RegionSnapshot]) -> dict[str, int]:
    """`vram_tiers` of what the regions' processes hold together."""
    slots = [slot for region in regions for slot in region.slots]
    return vram_tiers(
        sum(region.total_bytes for region in regions),
        sum(slot.host_bytes for slot in slots),
        sum(slot.disk_bytes for slot in slots),
    )


def _limits_of(region: RegionSnapshot) -> _Limits:
    return _Limits(
        region.vram_limit,
        region.tflops_limit,
        region.tflops_request,
        region.gpu_peak_tflops,
        region.host_limit,
        region.disk_limit,
    )


def _link(link: Path, target: str) -> None:
    """`link` pointing at `target` (a name in the same directory), replaced when it points
    elsewhere (the worker's GPUs changed)."""
    try:
        if link.readlink() == Path(target):
            return
        link.unlink()
    except FileNotFoundError:
        pass
    except OSError:  # not a link: an earlier layout's file
        link.unlink()
    link.symlink_to(target)


def _is_device_link(path: Path) -> bool:
    ordinal = path.name.removeprefix(DEVICE_LINK.format(ordinal=""))
    return path.is_symlink() and ordinal.isdecimal() and path.name != ordinal


def _is_region_directory(path: Path) -> bool:
    if not path.is_dir() or path.is_symlink():
        return False
    return all(
        _is_device_link(entry) or (entry.suffix == SUFFIX and entry.is_file())
        for entry in path.iterdir()
    )


def _remove_unkept(
    root: Path, keep: set[PodKey], is_worker_directory: Callable[[Path], bool]
) -> list[str]:
    """Removes the worker directories under `root` not in `keep`; returns their names."""
    try:
        namespaces = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for namespace in namespaces:
        if not namespace.is_dir() or namespace.is_symlink():
            continue
        for entry in sorted(namespace.iterdir()):
            if (namespace.name, entry.name) in keep or not is_worker_directory(entry):
                continue
            _remove_directory(entry)
            removed.append(f"{namespace.name}/{entry.name}")
    return removed


def _remove_directory(directory: Path) -> None:
    """The worker's directory, and its namespace's once that holds no other worker."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        entry.unlink(missing_ok=True)
    directory.rmdir()
    with contextlib.suppress(OSError):  # another worker's directory is still in it
        directory.parent.rmdir()
