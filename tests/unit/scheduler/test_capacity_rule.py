"""The capacity rule at its exact boundaries: requests fit the physical GPU, limits fit the
virtual capacity granted by oversubscription (capped by the host's RAM and disk), to the
byte and to the milli-TFLOPS."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.scheduler.simulate import simulate
from tests.unit.scheduler.cluster_builders import GI, gpu, gpu_node, node, pool, tf_pod

PHYSICAL_VRAM = 80 * GI


def _cluster(
    ram: str | None = "1Ti", disk: str | None = "4Ti", **oversubscription: int
) -> ClusterState:
    state, report = ClusterState.build(
        Fleet(
            nodes=[node("n1")],
            gpu_nodes=[gpu_node("n1", ram=ram, disk=disk)],
            gpus=[gpu("n1-gpu-0", "n1", tflops="989", vram="80Gi")],
            pools=[pool(oversubscription=oversubscription)],
            pods=[],
            templates=[],
        )
    )
    assert not report.problems()
    return state


def _try(cluster: ClusterState, **annotations: str) -> dict[str, Any]:
    profile = build_profiles(default_config())[SCHEDULER_NAME]
    return simulate(profile, cluster, tf_pod("probe", **annotations))


def _reasons(result: dict[str, Any]) -> str:
    return " | ".join(entry["reason"] for entry in result["diagnosis"]["reasons"])


@pytest.mark.parametrize(("mem", "disk"), [(40, 20), (50, 70), (0, 0), (100, 100)])
def test_vram_limit_up_to_exactly_the_virtual_bound(mem: int, disk: int) -> None:
    cluster = _cluster(vramExpandToHostMem=mem, vramExpandToHostDisk=disk)
    bound = PHYSICAL_VRAM + PHYSICAL_VRAM * mem // 100 + PHYSICAL_VRAM * disk // 100
    fits = _try(cluster, vram_request="1Gi", vram_limit=str(bound), tflops_request="1")
    assert fits["schedulable"], fits
    over = _try(cluster, vram_request="1Gi", vram_limit=str(bound + 1), tflops_request="1")
    assert not over["schedulable"]
    assert "VRAM limit" in _reasons(over)


def test_vram_request_up_to_exactly_the_physical_vram() -> None:
    cluster = _cluster()
    assert _try(cluster, vram_request=str(PHYSICAL_VRAM), tflops_request="1")["schedulable"]
    over = _try(cluster, vram_request=str(PHYSICAL_VRAM + 1), tflops_request="1")
    assert not over["schedulable"]
    assert "insufficient VRAM" in _reasons(over)


def test_tflops_limit_up_to_exactly_the_oversold_bound() -> None:
    cluster = _cluster(tflopsOversellRatio=300)
    fits = _try(cluster, tflops_request="100", tflops_limit="2967", vram_request="1Gi")
    assert fits["schedulable"], fits
    over = _try(cluster, tflops_request="100", tflops_limit="2967001m", vram_request="1Gi")
    assert not over["schedulable"]
    assert "TFLOPS limit" in _reasons(over)


def test_tflops_request_up_to_exactly_the_physical_tflops() -> None:
    cluster = _cluster()
    assert _try(cluster, tflops_request="989", vram_request="1Gi")["schedulable"]
    over = _try(cluster, tflops_request="989001m", vram_request="1Gi")
    assert not over["schedulable"]
    assert "insufficient TFLOPS" in _reasons(over)


def test_expansion_never_beyond_the_host_ram_and_disk() -> None:
    # 8 GiB of RAM and 4 GiB of disk on a one-GPU node: the 50%/70% of 80 GiB the pool
    # grants is capped to what the host has.
    cluster = _cluster(ram="8Gi", disk="4Gi")
    bound = PHYSICAL_VRAM + 8 * GI + 4 * GI
    assert _try(cluster, vram_request="1Gi", vram_limit=str(bound), tflops_request="1")[
        "schedulable"
    ]
    assert not _try(cluster, vram_request="1Gi", vram_limit=str(bound + 1), tflops_request="1")[
        "schedulable"
    ]


def test_unreported_host_memory_grants_no_expansion() -> None:
    cluster = _cluster(ram=None, disk=None)
    assert _try(cluster, vram_request="1Gi", vram_limit="80Gi", tflops_request="1")["schedulable"]
    over = _try(cluster, vram_request="1Gi", vram_limit=str(PHYSICAL_VRAM + 1), tflops_request="1")
    assert not over["schedulable"]


def test_existing_allocations_count_against_both_bounds() -> None:
    state, report = ClusterState.build(
        Fleet(
            nodes=[node("n1")],
            gpu_nodes=[gpu_node("n1")],
            gpus=[gpu("n1-gpu-0", "n1")],
            pools=[pool(oversubscription={"vramExpandToHostMem": 0, "vramExpandToHostDisk": 0})],
            pods=[
                tf_pod(
                    "held",
                    node_name="n1",
                    vram_request="60Gi",
                    vram_limit="70Gi",
                    tflops_request="10",
                    gpu_ids="n1-gpu-0",
                )
            ],
            templates=[],
        )
    )
    assert report.restored == 1
    assert _try(state, vram_request="10Gi", tflops_request="1")["schedulable"]
    # 60 + 20 requested fits the 80 GiB physically, but 70 + 20 limits exceed the 80 GiB
    # virtual capacity of a pool without expansion.
    over = _try(state, vram_request="20Gi", tflops_request="1")
    assert not over["schedulable"]
    assert "VRAM limit" in _reasons(over)


def test_simulate_changes_nothing() -> None:
    cluster = _cluster()
    before = cluster.gpus.snapshot()
    assert _try(cluster, vram_request="8Gi", tflops_request="100")["schedulable"]
    assert cluster.gpus.snapshot() == before
