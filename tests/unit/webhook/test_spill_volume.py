"""A converted pod whose pool pages VRAM out to disk finds its spill directory, the one the node
agent makes for it, at the path its shim is told; a pool that keeps VRAM off disk gives none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorfusion.agent.regions import WorkerRegions
from tensorfusion.agent.spill import DEFAULT_SPILL_ROOT
from tensorfusion.api.annotations import GPU_IDS, GPU_INDICES, VRAM_LIMIT
from tensorfusion.webhook.shim_injection import SPILL_DIR, SPILL_VOLUME
from tests.kube.kubelet import expanded
from tests.unit.agent.conftest import gpu

from .pods import container, converted, pool, resolved_env, tf_pod


def pool_expanding(host: int, disk: int) -> dict[str, Any]:
    found = pool("shared", default=True)
    over = {"vramExpandToHostMem": host, "vramExpandToHostDisk": disk}
    found["spec"] = {"capacityConfig": {"oversubscription": over}}
    return found


def test_the_spill_mount_is_the_directory_the_agent_makes(tmp_path: Path) -> None:
    pod = converted(tf_pod({VRAM_LIMIT: "4Gi"}), [pool_expanding(50, 70)])
    pod["metadata"]["uid"] = "uid-1"
    pod["metadata"]["annotations"] |= {GPU_IDS: "node-0-gpu-0", GPU_INDICES: "0"}
    regions = WorkerRegions(tmp_path / "shm", spill_root=tmp_path / "spill")
    agent_env = regions.prepare(pod, [gpu("node-0-gpu-0", 0)])

    env = resolved_env(pod, "main")
    assert env["TF_VRAM_SPILL_DIR"] == SPILL_DIR
    (mount,) = [m for m in container(pod, "main")["volumeMounts"] if m["name"] == SPILL_VOLUME]
    assert mount["mountPath"] == SPILL_DIR
    on_host = tmp_path / "spill" / expanded(mount["subPathExpr"], env)
    assert on_host == Path(agent_env["TF_VRAM_SPILL_DIR"])
    assert on_host.is_dir()
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == SPILL_VOLUME]
    assert volume["hostPath"] == {"path": str(DEFAULT_SPILL_ROOT), "type": "DirectoryOrCreate"}


def test_a_pool_that_keeps_vram_off_disk_gives_no_spill_directory() -> None:
    pod = converted(tf_pod({VRAM_LIMIT: "4Gi"}), [pool_expanding(50, 0)])
    assert "TF_VRAM_SPILL_DIR" not in resolved_env(pod, "main")
    assert all(v["name"] != SPILL_VOLUME for v in pod["spec"]["volumes"])
    assert all(m["name"] != SPILL_VOLUME for m in container(pod, "main")["volumeMounts"])


def test_converting_twice_adds_the_spill_directory_once() -> None:
    pools = [pool_expanding(0, 30)]
    once = converted(tf_pod({VRAM_LIMIT: "4Gi"}), pools)
    twice = converted(once, pools)
    assert twice == once
