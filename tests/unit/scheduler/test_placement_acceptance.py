"""The guide's R9 pod, scheduled by the guide's R8 configuration on a generated 100-node
fleet: compact-first lands on the fullest GPU that fits, low-load-first on the emptiest.
The expected GPU is worked out here from the fleet's own objects, independently of the
allocator and the kernels."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from tensorfusion.api.quantity import Quantity
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.profile import build_profiles, load_scheduler_config
from tensorfusion.scheduler.simulate import simulate
from tests.unit.scheduler.cluster_builders import template

GUIDE = Path(__file__).parents[2] / "fixtures" / "guide"
R9_POD = yaml.safe_load((GUIDE / "r09-simulate-pod.yaml").read_text())


def _cluster(mode: str | None, seed: int) -> ClusterState:
    objects = generate_fleet(100, 8, "H100", 0.6, seed=seed)
    if mode is not None:
        objects.templates = [template("placement", mode)]
        for pool in objects.pools:
            pool["spec"]["schedulingConfigTemplate"] = "placement"
    state, report = ClusterState.build(objects)
    assert not report.problems()
    return state


def _expected_scores(seed: int, lowest: bool) -> tuple[dict[str, int], int]:
    """Each feasible GPU's score for the R9 pod, computed from the fleet's objects: the
    VRAM and TFLOPS shares after placing it, weighted 0.7 / 0.3 (R8), rounded."""
    fleet = generate_fleet(100, 8, "H100", 0.6, seed=seed)
    capacity = {
        g["metadata"]["name"]: (
            Quantity.parse(str(g["status"]["capacity"]["tflops"])).exact,
            Quantity.parse(str(g["status"]["capacity"]["vram"])).value(),
        )
        for g in fleet.gpus
    }
    used_tflops = dict.fromkeys(capacity, Fraction(0))
    used_vram = dict.fromkeys(capacity, 0)
    for pod in fleet.pods:
        notes = pod["metadata"]["annotations"]
        for name in notes["tensor-fusion.ai/gpu-ids"].split(","):
            used_tflops[name] += Quantity.parse(notes["tensor-fusion.ai/tflops-request"]).exact
            used_vram[name] += Quantity.parse(notes["tensor-fusion.ai/vram-request"]).value()
    want_tflops, want_vram = Quantity.parse("100").exact, 16 * 1024**3
    scores = {}
    for name, (tflops, vram) in capacity.items():
        after_tflops, after_vram = used_tflops[name] + want_tflops, used_vram[name] + want_vram
        if after_tflops > tflops or after_vram > vram:
            continue
        vram_share = after_vram * 100.0 / vram
        tflops_share = float(after_tflops * 100 / tflops)
        if lowest:
            vram_share, tflops_share = 100.0 - vram_share, 100.0 - tflops_share
        scores[name] = math.floor(0.7 * vram_share + 0.3 * tflops_share + 0.5)
    return scores, max(scores.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    ("mode", "lowest"), [(None, False), ("CompactFirst", False), ("LowLoadFirst", True)]
)
def test_r9_pod_lands_by_placement_mode(mode: str | None, lowest: bool, seed: int) -> None:
    cluster = _cluster(mode, seed)
    profile = build_profiles(load_scheduler_config(GUIDE / "r08-scheduler-config.yaml"))[
        SCHEDULER_NAME
    ]
    result = simulate(profile, cluster, R9_POD)
    assert result["schedulable"], result
    (chosen,) = result["gpus"]
    scores, best = _expected_scores(seed, lowest)
    assert chosen in scores, "the chosen GPU must be feasible"
    assert scores[chosen] == best, (chosen, scores[chosen], best)
    # The fleet offers real choice: feasible GPUs do not all score the same.
    assert len(set(scores.values())) > 1


def test_default_mode_is_compact_first() -> None:
    assert dataclasses.replace(_cluster(None, 1).pools["default"]).placement == "CompactFirst"


def test_simulate_reports_stages_scores_and_the_top_nodes() -> None:
    cluster = _cluster(None, 4)
    profile = build_profiles(load_scheduler_config(GUIDE / "r08-scheduler-config.yaml"))[
        SCHEDULER_NAME
    ]
    result = simulate(profile, cluster, R9_POD)
    stages = {stage["plugin"]: stage for stage in result["filterStages"]}
    assert stages["GPUResourcesFit"]["before"] == 100
    assert 0 < stages["GPUResourcesFit"]["after"] <= 100
    top = result["topNodes"]
    assert top[0]["node"] == result["node"]
    assert {"GPUResourcesFit", "NodeResourcesFit"} <= set(top[0]["plugins"])
    totals = [entry["total"] for entry in top]
    assert totals == sorted(totals, reverse=True)
    # The bandwidth budget of R8 needs measurements the embedded mode lacks: said, not hidden.
    assert result["notes"] == [] or all("GPUNetworkTopologyAware" in n for n in result["notes"])
