"""What a converted pod gets so that the shim limits it: an init container that copies
`libtfshim.so` from the project's image into an emptyDir, `LD_PRELOAD` on it, the worker's
shared-region directory from the node (where the agent writes it), its spill directory on the
node's disk when its pool pages VRAM out to disk, and the shim's settings
that admission already knows. Every addition is keyed by name and replaced, never added
twice, so that converting a converted pod changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Final

from tensorfusion.agent.regions import DEVICE_LINK
from tensorfusion.agent.spill import DEFAULT_SPILL_ROOT, SPILL_DIR_ENV
from tensorfusion.api.annotations import GPU_INDICES, WorkloadRequest
from tensorfusion.shim import SHIM_FILENAME
from tensorfusion.webhook import worker_setup

DEFAULT_IMAGE: Final = "tensorfusion/tensor-fusion-operator:latest"
"""The chart's controller image: it has the package, and the shim beside its native module."""
SHIM_VOLUME: Final = "tensor-fusion-shim"
SHIM_DIR: Final = "/tensor-fusion/shim"
SHIM_PATH: Final = f"{SHIM_DIR}/{SHIM_FILENAME}"
INIT_CONTAINER: Final = "tensor-fusion-shim"
REGIONS_VOLUME: Final = "tensor-fusion-shm"
HOST_REGIONS_ROOT: Final = "/run/tensor-fusion/shm"
"""The agent's region root on a node; mounted at the same path in the workload."""
REGIONS_SUBPATH: Final = "$(POD_NAMESPACE)/$(POD_NAME)"
"""The worker's own directory under the root, named as the agent names it (`<ns>/<pod>`)."""
SPILL_VOLUME: Final = "tensor-fusion-spill"
SPILL_DIR: Final = "/run/tensor-fusion/spill"
"""Where the inject container sees its own spill directory (`<root>/<ns>/<pod>` on the node,
mounted by the same subpath as the regions)."""
REGIONS_WAIT_S: Final = 120
"""How long the init container waits for the agent's regions before it fails (the kubelet
then retries it): on a node without a running agent the pod stays in Init, saying why, rather
than running with limits no other process of it shares."""


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _pod_env() -> list[dict[str, Any]]:
    """What `REGIONS_SUBPATH` is expanded from."""
    return [
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("POD_NAME", "metadata.name"),
    ]


def region_path(ordinal: int) -> str:
    """Where the inject container sees the region of its `ordinal`-th GPU."""
    return f"{HOST_REGIONS_ROOT}/{DEVICE_LINK.format(ordinal=ordinal)}"


def init_container(image: str, gpu_count: int) -> dict[str, Any]:
    """Copies the shim out of the project's image, then waits until the node agent has made
    the pod's regions (it makes them once the pod is bound)."""
    command = ["python3", "-m", worker_setup.__name__, "--copy-shim-to", SHIM_PATH]
    for ordinal in range(gpu_count):
        command += ["--wait-for", region_path(ordinal)]
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*command, "--timeout", str(REGIONS_WAIT_S)],
        "env": _pod_env(),
        "volumeMounts": [
            {"name": SHIM_VOLUME, "mountPath": SHIM_DIR},
            _regions_mount(read_only=True),
        ],
    }


def _regions_mount(*, read_only: bool = False) -> dict[str, Any]:
    mount: dict[str, Any] = {
        "name": REGIONS_VOLUME,
        "mountPath": HOST_REGIONS_ROOT,
        "subPathExpr": REGIONS_SUBPATH,
    }
    if read_only:
        mount["readOnly"] = True
    return mount


def volumes(*, spill: bool = False) -> list[dict[str, Any]]:
    """`spill`: with the node's spill root (the agent's), on local disk."""
    found = [
        {"name": SHIM_VOLUME, "emptyDir": {}},
        {
            "name": REGIONS_VOLUME,
            "hostPath": {"path": HOST_REGIONS_ROOT, "type": "DirectoryOrCreate"},
        },
    ]
    if spill:
        host = {"path": str(DEFAULT_SPILL_ROOT), "type": "DirectoryOrCreate"}
        found.append({"name": SPILL_VOLUME, "hostPath": host})
    return found


def volume_mounts(*, spill: bool = False) -> list[dict[str, Any]]:
    mounts = [
        {"name": SHIM_VOLUME, "mountPath": SHIM_DIR, "readOnly": True},
        _regions_mount(),
    ]
    if spill:
        mounts.append(
            {"name": SPILL_VOLUME, "mountPath": SPILL_DIR, "subPathExpr": REGIONS_SUBPATH}
        )
    return mounts


def shim_env(
    workload: WorkloadRequest, gpu_count: int, *, spill: bool = False
) -> list[dict[str, Any]]:
    """The inject container's variables, in dependency order (kube expands `$(NAME)` only
    from variables listed before)."""
    env = [
        *_pod_env(),
        # The agent names a region's worker by the pod's uid; the uid exists only once the
        # pod is stored, so it is resolved when the container starts.
        _field_env("TF_WORKER_NAME", "metadata.uid"),
    ]
    if workload.vram_limit is not None:
        # Enforced within each process when the region cannot be joined.
        env.append({"name": "TF_VRAM_LIMIT", "value": str(workload.vram_limit)})
    # The agent links each GPU's region by its ordinal, so the paths are known before the
    # GPUs are.
    env += [{"name": f"TF_SHM_PATH_{i}", "value": region_path(i)} for i in range(gpu_count)]
    # The container is given its GPUs alone, by the NVIDIA container runtime from this
    # variable (the device plugin sets it for nvidia.com/gpu, which a converted pod no longer
    # requests). The scheduler writes the indices before it binds, so the kubelet resolves
    # them when it starts the container; in PCI bus order, as the links above are.
    env += [
        _field_env("NVIDIA_VISIBLE_DEVICES", f"metadata.annotations['{GPU_INDICES}']"),
        {"name": "CUDA_DEVICE_ORDER", "value": "PCI_BUS_ID"},
    ]
    if spill:
        env.append({"name": SPILL_DIR_ENV, "value": SPILL_DIR})
    return env


def list_at(parent: MutableMapping[str, Any], key: str) -> list[Any]:
    """The list under `key`, made (also in place of an explicit null) when there is none."""
    items = parent.get(key)
    if not isinstance(items, list):
        items = parent[key] = []
    return items


def _upsert(items: list[dict[str, Any]], additions: list[dict[str, Any]]) -> None:
    """Items of the additions' names are dropped and the additions appended in order: the
    order `$(NAME)` expansion needs holds, and a second pass leaves the list as it was."""
    names = {addition["name"] for addition in additions}
    items[:] = [item for item in items if item.get("name") not in names] + additions


def _preload(env: list[dict[str, Any]]) -> dict[str, Any]:
    """`LD_PRELOAD` with the shim first, keeping libraries the container already preloads."""
    current = next((item for item in env if item.get("name") == "LD_PRELOAD"), None)
    value = current.get("value") if current else None
    others = [part for part in (value or "").split(":") if part and part != SHIM_PATH]
    return {"name": "LD_PRELOAD", "value": ":".join([SHIM_PATH, *others])}


def inject_shim(
    spec: MutableMapping[str, Any],
    inject: Iterable[str],
    workload: WorkloadRequest,
    gpu_count: int,
    image: str,
    *,
    spill: bool = False,
) -> None:
    """Adds the shim to `spec` (changed in place) for the containers named in `inject`;
    `spill`: with a spill directory for VRAM paged out to disk."""
    _upsert(list_at(spec, "initContainers"), [init_container(image, gpu_count)])
    _upsert(list_at(spec, "volumes"), volumes(spill=spill))
    names = set(inject)
    for container in spec.get("containers") or ():
        if container.get("name") not in names:
            continue
        env = list_at(container, "env")
        _upsert(env, [*shim_env(workload, gpu_count, spill=spill), _preload(env)])
        _upsert(list_at(container, "volumeMounts"), volume_mounts(spill=spill))
