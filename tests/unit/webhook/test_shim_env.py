"""What the webhook gives the inject container is what the shim reads, and leads it to the
shared region the node agent writes for the pod."""

from __future__ import annotations

import re
from pathlib import Path

from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.api.annotations import GPU_COUNT, GPU_IDS, VRAM_LIMIT
from tensorfusion.shim import SHIM_ENV
from tensorfusion.webhook.shim_injection import HOST_REGIONS_ROOT, REGIONS_VOLUME
from tests.unit.agent.conftest import gpu

from .pods import container, converted, expanded, resolved_env, tf_pod

_PER_DEVICE = re.compile(r"_\d+$")


def test_every_shim_variable_the_webhook_writes_is_one_the_shim_reads() -> None:
    shim_names = {variable.name for variable in SHIM_ENV}
    for given in ({VRAM_LIMIT: "4Gi"}, {VRAM_LIMIT: "4Gi", GPU_COUNT: "2"}):
        env = container(converted(tf_pod(given)), "main")["env"]
        written = {_PER_DEVICE.sub("", item["name"]) for item in env}
        ours = {name for name in written if name.startswith("TF_")}
        assert ours, written
        assert ours <= shim_names


def test_a_single_gpu_worker_finds_the_region_the_agent_makes(tmp_path: Path) -> None:
    pod = converted(tf_pod())
    # As stored and bound: the API server gives the uid, the scheduler the gpu-ids.
    pod["metadata"]["uid"] = "uid-1"
    pod["metadata"]["annotations"][GPU_IDS] = "node-0-gpu-1"
    agent_env = WorkerRegions(tmp_path).prepare(pod, [gpu("node-0-gpu-1", 1)])
    host_region = Path(agent_env["TF_SHM_PATH_0"])

    env = resolved_env(pod, "main")
    (mount,) = [m for m in container(pod, "main")["volumeMounts"] if m["name"] == REGIONS_VOLUME]
    host_dir = tmp_path / expanded(mount["subPathExpr"], env)
    seen_at = Path(env["TF_SHM_PATH"])
    assert seen_at.parent == Path(mount["mountPath"]) == Path(HOST_REGIONS_ROOT)
    assert host_dir / seen_at.name == host_region
    assert host_region.is_file()
    assert env["TF_WORKER_NAME"] == agent_env["TF_WORKER_NAME"]


def test_a_multi_gpu_worker_gets_no_region_path_but_its_vram_limit() -> None:
    env = resolved_env(converted(tf_pod({VRAM_LIMIT: "4Gi", GPU_COUNT: "2"})), "main")
    assert not any(name.startswith("TF_SHM_PATH") for name in env)
    assert env["TF_VRAM_LIMIT"] == str(4 << 30)
