"""What the webhook gives the inject container is what the shim reads, and leads it to the
shared region the node agent writes for the pod."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import GPU_COUNT, GPU_IDS, GPU_INDICES, VRAM_LIMIT
from tensorfusion.shim import SHIM_ENV
from tensorfusion.webhook.shim_injection import HOST_REGIONS_ROOT, REGIONS_VOLUME
from tests.kube.kubelet import expanded
from tests.unit.agent.conftest import gpu

from .pods import container, converted, resolved_env, tf_pod

_PER_DEVICE = re.compile(r"_\d+$")


def test_every_shim_variable_the_webhook_writes_is_one_the_shim_reads() -> None:
    shim_names = {variable.name for variable in SHIM_ENV}
    for given in ({VRAM_LIMIT: "4Gi"}, {VRAM_LIMIT: "4Gi", GPU_COUNT: "2"}):
        env = container(converted(tf_pod(given)), "main")["env"]
        written = {_PER_DEVICE.sub("", item["name"]) for item in env}
        ours = {name for name in written if name.startswith("TF_")}
        assert ours, written
        assert ours <= shim_names


@pytest.mark.parametrize("gpu_ids", ["node-0-gpu-1", "node-0-gpu-2,node-0-gpu-0"])
def test_each_gpus_region_path_leads_to_the_region_the_agent_makes(
    tmp_path: Path, gpu_ids: str
) -> None:
    count = len(gpu_ids.split(","))
    pod = converted(tf_pod({VRAM_LIMIT: "4Gi", GPU_COUNT: str(count)}))
    # As stored and bound: the API server gives the uid, the scheduler the gpu-ids.
    pod["metadata"]["uid"] = "uid-1"
    pod["metadata"]["annotations"][GPU_IDS] = gpu_ids
    indices = sorted(int(name.rsplit("-", 1)[1]) for name in gpu_ids.split(","))
    pod["metadata"]["annotations"][GPU_INDICES] = ",".join(map(str, indices))
    gpus = [gpu(f"node-0-gpu-{index}", index) for index in range(3)]
    agent_env = WorkerRegions(tmp_path).prepare(pod, gpus)

    env = resolved_env(pod, "main")
    (mount,) = [m for m in container(pod, "main")["volumeMounts"] if m["name"] == REGIONS_VOLUME]
    host_dir = tmp_path / expanded(mount["subPathExpr"], env)
    assert Path(mount["mountPath"]) == Path(HOST_REGIONS_ROOT)
    # The container's i-th device is its i-th GPU in PCI bus order (the gpus' index here);
    # the agent's own env lists them in gpu-ids order.
    ids = gpu_ids.split(",")
    by_bus = sorted(ids, key=lambda name: int(name.rsplit("-", 1)[1]))
    for ordinal, gpu_id in enumerate(by_bus):
        seen_at = Path(env[f"TF_SHM_PATH_{ordinal}"])
        assert seen_at.parent == Path(HOST_REGIONS_ROOT)
        on_host = host_dir / seen_at.name
        expected = agent_env[f"TF_SHM_PATH_{ids.index(gpu_id)}"]
        assert on_host.resolve() == Path(expected).resolve()
    assert f"TF_SHM_PATH_{count}" not in env
    # The runtime gives the container these devices, numbered 0.. in PCI bus order.
    assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(map(str, indices))
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert env["TF_WORKER_NAME"] == agent_env["TF_WORKER_NAME"]
    assert env["TF_VRAM_LIMIT"] == str(4 << 30)


def test_the_init_container_waits_for_every_region_in_the_same_directory() -> None:
    pod = converted(tf_pod({VRAM_LIMIT: "4Gi", GPU_COUNT: "2"}))
    (init,) = pod["spec"]["initContainers"]
    waits = [init["command"][i + 1] for i, arg in enumerate(init["command"]) if arg == "--wait-for"]
    env = resolved_env(pod, "main")
    assert waits == [env["TF_SHM_PATH_0"], env["TF_SHM_PATH_1"]]
    (mount,) = [m for m in init["volumeMounts"] if m["name"] == REGIONS_VOLUME]
    main_mount = next(
        m for m in container(pod, "main")["volumeMounts"] if m["name"] == REGIONS_VOLUME
    )
    assert mount["subPathExpr"] == main_mount["subPathExpr"]
    assert {item["name"] for item in init["env"]} >= {"POD_NAMESPACE", "POD_NAME"}
