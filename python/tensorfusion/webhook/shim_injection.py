"""What a converted pod gets so that the shim limits it: an init container that copies
`libtfshim.so` from the project's image into an emptyDir, `LD_PRELOAD` on it, the worker's
shared-region directory from the node (where the agent writes it), and the shim's settings
that admission already knows. Every addition is keyed by name and replaced, never added
twice, so that converting a converted pod changes nothing."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Final

from tensorfusion.agent.regions import SUFFIX as REGION_SUFFIX
from tensorfusion.api.annotations import GPU_IDS, WorkloadRequest
from tensorfusion.shim import SHIM_FILENAME

DEFAULT_IMAGE: Final = "tensorfusion/tensor-fusion-operator:latest"
"""The chart's controller image: it has the package, and the shim beside its native module."""
SHIM_VOLUME: Final = "tensor-fusion-shim"
SHIM_DIR: Final = "/tensor-fusion/shim"
SHIM_PATH: Final = f"{SHIM_DIR}/{SHIM_FILENAME}"
INIT_CONTAINER: Final = "tensor-fusion-shim"
REGIONS_VOLUME: Final = "tensor-fusion-shm"
HOST_REGIONS_ROOT: Final = "/run/tensor-fusion/shm"
"""The agent's region root on a node; mounted at the same path in the workload."""
REGIONS_SUBPATH: Final = "$(POD_NAMESPACE).$(POD_NAME)"
"""The worker's own directory under the root, named as the agent names it (`<ns>.<pod>`)."""
GPU_IDS_ENV: Final = "TENSOR_FUSION_GPU_IDS"
"""The pod's gpu-ids annotation, resolved when the container starts (after binding)."""
# Copied by the package's own lookup, so the image layout is never spelled out here.
_COPY_SHIM: Final = (
    "import shutil, sys; from tensorfusion.shim import shim_path; "
    "shutil.copy(shim_path(), sys.argv[1])"
)


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def init_container(image: str) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", _COPY_SHIM, SHIM_PATH],
        "volumeMounts": [{"name": SHIM_VOLUME, "mountPath": SHIM_DIR}],
    }


def volumes() -> list[dict[str, Any]]:
    return [
        {"name": SHIM_VOLUME, "emptyDir": {}},
        {
            "name": REGIONS_VOLUME,
            "hostPath": {"path": HOST_REGIONS_ROOT, "type": "DirectoryOrCreate"},
        },
    ]


def volume_mounts() -> list[dict[str, Any]]:
    return [
        {"name": SHIM_VOLUME, "mountPath": SHIM_DIR, "readOnly": True},
        {"name": REGIONS_VOLUME, "mountPath": HOST_REGIONS_ROOT, "subPathExpr": REGIONS_SUBPATH},
    ]


def shim_env(workload: WorkloadRequest, gpu_count: int) -> list[dict[str, Any]]:
    """The inject container's variables, in dependency order (kube expands `$(NAME)` only
    from variables listed before)."""
    env = [
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("POD_NAME", "metadata.name"),
        # The agent names a region's worker by the pod's uid; the uid exists only once the
        # pod is stored, so it is resolved when the container starts.
        _field_env("TF_WORKER_NAME", "metadata.uid"),
    ]
    if workload.vram_limit is not None:
        # Enforced within each process when the region cannot be joined.
        env.append({"name": "TF_VRAM_LIMIT", "value": str(workload.vram_limit)})
    if gpu_count == 1:
        # A single GPU's region is `<gpu name>.shm`, and gpu-ids then holds just that name;
        # with several GPUs the list cannot be split here, so only the fallback applies.
        env.append(_field_env(GPU_IDS_ENV, f"metadata.annotations['{GPU_IDS}']"))
        region = f"{HOST_REGIONS_ROOT}/$({GPU_IDS_ENV}){REGION_SUFFIX}"
        env.append({"name": "TF_SHM_PATH", "value": region})
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
) -> None:
    """Adds the shim to `spec` (changed in place) for the containers named in `inject`."""
    _upsert(list_at(spec, "initContainers"), [init_container(image)])
    _upsert(list_at(spec, "volumes"), volumes())
    names = set(inject)
    for container in spec.get("containers") or ():
        if container.get("name") not in names:
            continue
        env = list_at(container, "env")
        _upsert(env, [*shim_env(workload, gpu_count), _preload(env)])
        _upsert(list_at(container, "volumeMounts"), volume_mounts())
