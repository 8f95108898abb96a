"""The best-node search binds every pod where the full scan binds it: random fleets, placement
modes, taints, node-affinity preferences, NodeResourcesFit strategies and request sequences
(TFLOPS or compute percent, pool and model asked for or not), scheduled side by side through
both; and a profile that moves from one cluster to another trusts nothing of the first."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.api.scheduler_config import SCHEDULER_NAME, KubeSchedulerConfiguration
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile, build_profiles, default_config
from tests.unit.scheduler.cluster_builders import template, tf_pod

MODES = ("CompactFirst", "LowLoadFirst", "NodeCompactGPULowLoad")
MODELS = ("H100", "A100-40", "L4")
ZONE = "topology.kubernetes.io/zone"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


@st.composite
def fleets(draw: st.DrawFn) -> Fleet:
    fleet = generate_fleet(
        draw(st.integers(1, 12)),
        draw(st.integers(1, 8)),
        draw(st.sampled_from(MODELS)),
        draw(st.sampled_from([0.0, 0.3, 0.6, 0.9])),
        seed=draw(st.integers(0, 1000)),
    )
    fleet.templates.append(template("placement", draw(st.sampled_from(MODES))))
    fleet.pools[0]["spec"]["schedulingConfigTemplate"] = "placement"
    for node in fleet.nodes:
        if draw(st.booleans()):
            node["spec"]["taints"] = [{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]
    return fleet


@st.composite
def pods(draw: st.DrawFn, number: int) -> dict[str, Any]:
    vram = draw(st.integers(1, 80))
    compute: dict[str, str] = (
        {"compute_percent_request": str(draw(st.integers(1, 100))), "compute_percent_limit": "100"}
        if draw(st.booleans())
        else {"tflops_request": str(draw(st.integers(1, 900))), "tflops_limit": "900"}
    )
    for key, values in (("gpupool", ["default", "other"]), ("gpu_model", MODELS)):
        if draw(st.integers(0, 3)) == 0:
            compute[key] = draw(st.sampled_from(values))
    body = tf_pod(
        f"p{number}",
        vram_request=f"{vram}Gi",
        vram_limit=f"{vram}Gi",
        gpu_count=str(draw(st.integers(1, 3))),
        **compute,
    )
    cpu = draw(st.sampled_from([None, "1", "8"]))
    if cpu is not None:
        body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    zones = draw(st.lists(st.sampled_from(ZONES), max_size=2, unique=True))
    if zones:
        term = {"matchExpressions": [{"key": ZONE, "operator": "In", "values": zones}]}
        body["spec"]["affinity"] = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": draw(st.integers(1, 100)), "preference": term}
                ]
            }
        }
    return body


STRATEGIES: tuple[dict[str, Any], ...] = (
    {"type": "LeastAllocated"},
    {"type": "MostAllocated"},
    {
        "type": "RequestedToCapacityRatio",
        "requestedToCapacityRatio": {
            "shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]
        },
    },
)


def _profile(strategy: dict[str, Any] | None = None) -> Profile:
    config = default_config()
    if strategy is not None:
        config = KubeSchedulerConfiguration.model_validate(
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "profiles": [
                    {
                        "schedulerName": SCHEDULER_NAME,
                        "pluginConfig": [
                            {"name": "NodeResourcesFit", "args": {"scoringStrategy": strategy}}
                        ],
                    }
                ],
            }
        )
    return build_profiles(config, lambda pod, node, annotations: None)[SCHEDULER_NAME]


@settings(deadline=None, max_examples=40)
@given(fleet=fleets(), data=st.data())
def test_search_binds_every_pod_where_the_full_scan_does(fleet: Fleet, data: st.DataObject) -> None:
    reference, _ = ClusterState.build(copy.deepcopy(fleet))
    searched, _ = ClusterState.build(copy.deepcopy(fleet))
    strategy = data.draw(st.sampled_from(STRATEGIES))
    full, fast = _profile(strategy), _profile(strategy)
    for number in range(data.draw(st.integers(1, 12))):
        body = data.draw(pods(number))
        want = schedule_one(full, reference.view, PodInfo.from_dict(body), full_scan=True)
        got = schedule_one(fast, searched.view, PodInfo.from_dict(copy.deepcopy(body)))
        assert (got.node, got.status.code) == (want.node, want.status.code)
        assert got.annotations == want.annotations


def test_the_search_answers_without_a_full_scan() -> None:
    """A plain GPU pod is placed by the search (no per-node arrays), where the full scan
    places it."""
    fleet = generate_fleet(6, 4, "H100", 0.5, seed=3)
    reference, _ = ClusterState.build(copy.deepcopy(fleet))
    searched, _ = ClusterState.build(fleet)
    body = tf_pod("p", tflops_request="100", tflops_limit="100", vram_request="8Gi")
    want = schedule_one(_profile(), reference.view, PodInfo.from_dict(body), full_scan=True)
    got = schedule_one(_profile(), searched.view, PodInfo.from_dict(copy.deepcopy(body)))
    assert want.feasible is not None
    assert got.feasible is None
    assert (got.node, got.annotations) == (want.node, want.annotations)


def _bound(body: dict[str, Any], node: str, gpu: str) -> dict[str, Any]:
    body["metadata"]["uid"] = body["metadata"]["name"]
    body["metadata"]["annotations"][GPU_IDS] = gpu
    body["spec"]["nodeName"] = node
    body["status"] = {"phase": "Running"}
    return body


def test_a_profile_moved_to_a_rebuilt_cluster_trusts_nothing_of_the_old_one() -> None:
    """One profile schedules on a cluster, then on one rebuilt from the store whose nodes
    happen to have the same versions but other contents: it places where the full scan does."""
    fleet = generate_fleet(3, 1, "H100", 0.0, seed=1)
    names = [node["metadata"]["name"] for node in fleet.nodes]
    gpus = [gpu["metadata"]["name"] for gpu in fleet.gpus]
    profile = _profile()
    first, _ = ClusterState.build(copy.deepcopy(fleet))
    for name, node, tflops, vram in (("m", 1, "300", "30Gi"), ("s", 2, "10", "1Gi")):
        body = tf_pod(name, tflops_request=tflops, tflops_limit=tflops, vram_request=vram)
        body["spec"]["nodeName"] = names[node]
        assert schedule_one(profile, first.view, PodInfo.from_dict(body)).node == names[node]
    # A pod that fits nowhere: the search's view of the first cluster is now current.
    too_big = tf_pod("x", tflops_request="10", tflops_limit="10", vram_request="500Gi")
    assert schedule_one(profile, first.view, PodInfo.from_dict(too_big)).node is None
    fleet.pods += [
        _bound(
            tf_pod("m2", tflops_request="300", tflops_limit="300", vram_request="30Gi"),
            names[1],
            gpus[1],
        ),
        _bound(
            tf_pod("b2", tflops_request="900", tflops_limit="900", vram_request="70Gi"),
            names[2],
            gpus[2],
        ),
    ]
    rebuilt, _ = ClusterState.build(copy.deepcopy(fleet))
    reference, _ = ClusterState.build(copy.deepcopy(fleet))
    body = tf_pod("p", tflops_request="5", tflops_limit="5", vram_request="1Gi")
    want = schedule_one(_profile(), reference.view, PodInfo.from_dict(body), full_scan=True)
    got = schedule_one(profile, rebuilt.view, PodInfo.from_dict(copy.deepcopy(body)))
    assert (got.node, got.annotations) == (want.node, want.annotations)
