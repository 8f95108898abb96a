"""GPU interconnect topology: NVLink cliques and NUMA nodes from GPU records, and the
GPUNetworkTopologyAware plugin through the whole pipeline (simulate) on small clusters:
multi-GPU pods get NVLink pairs, else one NUMA node, and remote workers respect the
per-node intranet bandwidth budget once traffic is measured."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.scheduler.allocation import GpuRecord
from tensorfusion.scheduler.allocator import READY, GpuAllocator
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.fleet import Fleet
from tensorfusion.scheduler.gpu_topology import numa_nodes, nvlink_cliques
from tensorfusion.scheduler.profile import (
    Profile,
    build_profiles,
    default_config,
    parse_scheduler_config,
)
from tensorfusion.scheduler.simulate import simulate
from tests.unit.scheduler.cluster_builders import GI, gpu, gpu_node, node, pool, tf_pod

PLUGIN = "GPUNetworkTopologyAware"
BUDGET_NOTE = (
    "GPUNetworkTopologyAware: the 100 GB/s per-node budget for remote workers is not "
    "enforced: no rx/tx measurements of every node (monitoring does not provide them yet)"
)
BUDGET_REASON = "intranet traffic has reached the 100 GB/s budget for remote workers"


# --- nvlink_cliques / numa_nodes ------------------------------------------------------------


def record(name: str, node_name: str = "n0", *peers: str, numa: int | None = None) -> GpuRecord:
    return GpuRecord(name, node_name, "pool-a", "H100", numa_node=numa, nvlink_peers=peers)


def groups_of(records: Sequence[GpuRecord]) -> tuple[set[frozenset[str]], set[str]]:
    """(the cliques as sets of GPU names, the GPUs in none), independent of the id values."""
    ids = nvlink_cliques(records)
    assert ids.dtype == np.int32
    assert len(ids) == len(records)
    cliques: dict[int, set[str]] = {}
    for rec, ident in zip(records, ids.tolist(), strict=True):
        if ident >= 0:
            cliques.setdefault(ident, set()).add(rec.name)
    alone = {rec.name for rec, ident in zip(records, ids.tolist(), strict=True) if ident == -1}
    assert all(ident >= -1 for ident in ids.tolist())
    return {frozenset(members) for members in cliques.values()}, alone


def test_full_cliques_share_an_id_and_separate_cliques_differ() -> None:
    records = [
        record("a0", "n0", "a1", "a2"),
        record("a1", "n0", "a0", "a2"),
        record("a2", "n0", "a0", "a1"),
        record("b0", "n0", "b1"),
        record("b1", "n0", "b0"),
        record("c0", "n1", "c1"),
        record("c1", "n1", "c0"),
        record("lonely", "n1"),
    ]
    cliques, alone = groups_of(records)
    assert cliques == {
        frozenset({"a0", "a1", "a2"}),
        frozenset({"b0", "b1"}),
        frozenset({"c0", "c1"}),
    }
    assert alone == {"lonely"}


@pytest.mark.parametrize(
    "links",
    [
        # A path: a-b, b-c, but not a-c.
        {"a": ("b",), "b": ("c",), "c": ()},
        # A ring of four (a cube-mesh in miniature): every GPU has two links, not three.
        {"a": ("b", "d"), "b": ("c",), "c": ("d",), "d": ()},
    ],
)
def test_components_that_are_not_cliques_get_no_group(links: dict[str, tuple[str, ...]]) -> None:
    records = [record(name, "n0", *peers) for name, peers in links.items()]
    records.append(record("x", "n0", "y"))
    records.append(record("y", "n0"))
    cliques, alone = groups_of(records)
    assert cliques == {frozenset({"x", "y"})}
    assert alone == set(links)


def test_a_link_listed_on_one_side_counts_both_ways() -> None:
    records = [
        record("a", "n0", "b", "c"),
        record("b", "n0", "c"),
        record("c", "n0"),
    ]
    cliques, alone = groups_of(records)
    assert cliques == {frozenset({"a", "b", "c"})}
    assert alone == set()


def test_peers_on_other_nodes_unknown_names_and_self_links_are_ignored() -> None:
    records = [
        record("a", "n0", "other-node", "ghost", "a"),
        record("other-node", "n1", "a"),
        record("b", "n0", "c", "ghost"),
        record("c", "n0", "b"),
    ]
    cliques, alone = groups_of(records)
    assert cliques == {frozenset({"b", "c"})}
    assert alone == {"a", "other-node"}


def test_no_records_no_groups() -> None:
    assert nvlink_cliques([]).tolist() == []
    assert numa_nodes([]).tolist() == []


def test_numa_nodes_with_unknown_as_minus_one() -> None:
    ids = numa_nodes([record("a", numa=1), record("b"), record("c", numa=0)])
    assert ids.dtype == np.int32
    assert ids.tolist() == [1, -1, 0]


def test_allocator_topology_follows_the_node_order_of_its_arrays() -> None:
    allocator = GpuAllocator()
    for rec, node_index in (
        (record("late-0", "n1", "late-1", numa=1), 1),
        (record("early", "n0", numa=0), 0),
        (record("late-1", "n1", numa=1), 1),
    ):
        allocator.add_gpu(rec, node_index, state=READY, capacity=(1_000, GI), virtual=(1_000, GI))
    groups, numa = allocator.topology()
    assert [r.name for r in allocator.records] == ["early", "late-0", "late-1"]
    assert allocator.arrays().node.tolist() == [0, 1, 1]
    assert groups[0] == -1
    assert groups[1] == groups[2] >= 0
    assert numa.tolist() == [0, 1, 1]
    # A GPU added later invalidates the cached topology.
    allocator.add_gpu(
        record("early-2", "n0", "early", numa=0), 0, state=READY, capacity=(1, 1), virtual=(1, 1)
    )
    groups, numa = allocator.topology()
    assert [r.name for r in allocator.records] == ["early", "early-2", "late-0", "late-1"]
    assert groups[0] == groups[1] >= 0
    assert groups[2] == groups[3] >= 0
    assert groups[0] != groups[2]
    assert numa.tolist() == [0, 0, 1, 1]


# --- the plugin through the pipeline ----------------------------------------------------------


def cluster(
    gpus: list[dict[str, Any]], pods: Sequence[dict[str, Any]] = (), nodes: int = 1
) -> ClusterState:
    names = [f"n{i}" for i in range(nodes)]
    state, report = ClusterState.build(
        Fleet(
            nodes=[node(name) for name in names],
            gpu_nodes=[gpu_node(name) for name in names],
            gpus=gpus,
            pools=[pool()],
            pods=list(pods),
            templates=[],
        )
    )
    assert report.problems() == []
    assert state.problems == []
    return state


def profile_from(plugin_config: str = "", plugins: str = "") -> Profile:
    config = parse_scheduler_config(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n"
        f"- schedulerName: {SCHEDULER_NAME}\n" + plugin_config + plugins
    )
    return build_profiles(config)[SCHEDULER_NAME]


DEFAULT = build_profiles(default_config())[SCHEDULER_NAME]
WITHOUT_TOPOLOGY = profile_from(
    plugins=f"  plugins:\n    multiPoint:\n      disabled:\n      - name: {PLUGIN}\n"
)
WITH_BUDGET = profile_from(
    plugin_config=(
        f"  pluginConfig:\n  - name: {PLUGIN}\n    args:\n      totalIntranetBandWidthGBps: 100\n"
    )
)


def busy(name: str, node_name: str, gpu_ids: str, tflops: str, vram: str) -> dict[str, Any]:
    """A running pod holding part of some GPUs (raising their compact-first score)."""
    return tf_pod(
        name,
        node_name=node_name,
        gpu_ids=gpu_ids,
        gpu_count=str(len(gpu_ids.split(","))),
        tflops_request=tflops,
        vram_request=vram,
    )


def two_gpu_pod(**annotations: str) -> dict[str, Any]:
    return tf_pod("w", gpu_count="2", tflops_request="100", vram_request="10Gi", **annotations)


def one_gpu_pod(**annotations: str) -> dict[str, Any]:
    return tf_pod("w", tflops_request="100", vram_request="10Gi", **annotations)


def plugin_scores(result: dict[str, Any], plugin: str) -> dict[str, int]:
    return {top["node"]: top["plugins"][plugin]["score"] for top in result["topNodes"]}


def stage(result: dict[str, Any], plugin: str = PLUGIN) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in result["filterStages"] if s["plugin"] == plugin]
    assert len(found) == 1
    return found[0]


def unlinked_and_linked(
    *pods: dict[str, Any], extra: Sequence[dict[str, Any]] = ()
) -> ClusterState:
    """n0: two GPUs without NVLink; n1: an NVLink pair (plus `extra` GPUs)."""
    gpus = [
        gpu("n0-g0", "n0", index=0),
        gpu("n0-g1", "n0", index=1),
        gpu("n1-g0", "n1", index=0, nvlinkPeers=["n1-g1"]),
        gpu("n1-g1", "n1", index=1, nvlinkPeers=["n1-g0"]),
    ]
    return cluster([*gpus, *extra], pods, nodes=2)


def test_a_two_gpu_pod_prefers_an_nvlink_node_over_a_better_packed_one() -> None:
    state = unlinked_and_linked(busy("busy", "n0", "n0-g0,n0-g1", "400", "40Gi"))
    # Without the plugin, compact-first puts the pod on the fuller node n0.
    plain = simulate(WITHOUT_TOPOLOGY, state, two_gpu_pod())
    assert (plain["node"], plain["gpus"]) == ("n0", ["n0-g0", "n0-g1"])
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert (result["node"], result["gpus"]) == ("n1", ["n1-g0", "n1-g1"])
    fit = plugin_scores(result, "GPUResourcesFit")
    assert fit["n0"] > fit["n1"]
    assert plugin_scores(result, PLUGIN) == {"n0": 0, "n1": 100}
    assert stage(result) == {"plugin": PLUGIN, "before": 2, "after": 2, "skipped": False}
    assert result["notes"] == []


def test_an_nvlink_node_whose_linked_gpus_do_not_fit_gets_no_preference() -> None:
    state = unlinked_and_linked(
        busy("full", "n1", "n1-g1", "989", "80Gi"),
        extra=[gpu("n1-g2", "n1", index=2), gpu("n1-g3", "n1", index=3)],
    )
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert plugin_scores(result, PLUGIN) == {"n0": 0, "n1": 0}


def two_nvlink_pairs(*pods: dict[str, Any]) -> ClusterState:
    """One node of four GPUs, NVLink pairs 0-1 and 2-3."""
    peers = {0: 1, 1: 0, 2: 3, 3: 2}
    return cluster(
        [gpu(f"n0-g{i}", "n0", index=i, nvlinkPeers=[f"n0-g{peers[i]}"]) for i in range(4)], pods
    )


def test_within_a_node_the_pod_gets_an_nvlink_pair() -> None:
    state = two_nvlink_pairs(
        busy("full", "n0", "n0-g1", "989", "80Gi"), busy("half", "n0", "n0-g0", "400", "40Gi")
    )
    # Compact-first alone takes the half-used GPU 0 and splits the pair 2-3.
    plain = simulate(WITHOUT_TOPOLOGY, state, two_gpu_pod())
    assert plain["gpus"] == ["n0-g0", "n0-g2"]
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert (result["node"], result["gpus"]) == ("n0", ["n0-g2", "n0-g3"])
    assert plugin_scores(result, PLUGIN) == {"n0": 100}
    # Simulate changed nothing: GPU 2 and 3 are still free.
    assert state.gpus.gpu_workers().tolist() == [1, 1, 0, 0]


def test_the_best_packed_nvlink_pair_of_a_node_is_chosen() -> None:
    state = two_nvlink_pairs(
        busy("a", "n0", "n0-g0", "600", "60Gi"),
        busy("b", "n0", "n0-g2", "400", "40Gi"),
        busy("c", "n0", "n0-g3", "400", "40Gi"),
    )
    # The fullest GPU is 0, but its pair is 0-1 with an empty GPU 1: the pair 2-3 packs
    # better on average, so it wins over the pair holding the single best GPU.
    plain = simulate(WITHOUT_TOPOLOGY, state, two_gpu_pod())
    assert plain["gpus"] == ["n0-g0", "n0-g2"]
    assert simulate(DEFAULT, state, two_gpu_pod())["gpus"] == ["n0-g2", "n0-g3"]


def on_numa(node_name: str, *numa: int) -> list[dict[str, Any]]:
    """GPUs of a node without NVLink, GPU i on NUMA node `numa[i]`."""
    return [gpu(f"{node_name}-g{i}", node_name, index=i, numaNode=n) for i, n in enumerate(numa)]


def test_without_nvlink_two_gpus_on_one_numa_node_are_preferred_to_a_split() -> None:
    state = cluster(
        on_numa("n0", 0, 0, 1, 1),
        [busy("a", "n0", "n0-g0", "400", "40Gi"), busy("b", "n0", "n0-g2", "300", "30Gi")],
    )
    plain = simulate(WITHOUT_TOPOLOGY, state, two_gpu_pod())
    assert plain["gpus"] == ["n0-g0", "n0-g2"]
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert result["gpus"] == ["n0-g0", "n0-g1"]
    assert plugin_scores(result, PLUGIN) == {"n0": 50}


def test_a_node_with_a_numa_pair_beats_one_whose_gpus_are_split() -> None:
    state = cluster(
        [*on_numa("n0", 0, 1), *on_numa("n1", 1, 1)],
        [busy("busy", "n0", "n0-g0,n0-g1", "400", "40Gi")],
        nodes=2,
    )
    assert simulate(WITHOUT_TOPOLOGY, state, two_gpu_pod())["node"] == "n0"
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert (result["node"], result["gpus"]) == ("n1", ["n1-g0", "n1-g1"])
    assert plugin_scores(result, PLUGIN) == {"n0": 0, "n1": 50}


def test_nvlink_outranks_numa() -> None:
    state = cluster(
        [
            *on_numa("n0", 0, 0),
            gpu("n1-g0", "n1", index=0, nvlinkPeers=["n1-g1"], numaNode=0),
            gpu("n1-g1", "n1", index=1, numaNode=1),
        ],
        nodes=2,
    )
    result = simulate(DEFAULT, state, two_gpu_pod())
    assert result["node"] == "n1"
    assert plugin_scores(result, PLUGIN) == {"n0": 50, "n1": 100}


def test_a_single_gpu_local_pod_skips_the_plugin() -> None:
    state = cluster([gpu("n0-g0", "n0", nvlinkPeers=["n0-g1"]), gpu("n0-g1", "n0", index=1)])
    for pod in (one_gpu_pod(), one_gpu_pod(is_local_gpu="true")):
        result = simulate(WITH_BUDGET, state, pod)
        assert result["node"] == "n0"
        assert stage(result) == {"plugin": PLUGIN, "before": 1, "after": 1, "skipped": True}
        assert all(PLUGIN not in top["plugins"] for top in result["topNodes"])
        assert result["notes"] == []


def test_a_pod_with_bad_annotations_skips_the_plugin() -> None:
    state = cluster([gpu("n0-g0", "n0")])
    result = simulate(DEFAULT, state, two_gpu_pod(vram_limit="lots"))
    assert result["schedulable"] is False
    assert result["diagnosis"]["unschedulablePlugins"] == ["GPUResourcesFit"]
    assert result["notes"] == []


# --- the bandwidth budget for remote workers ---------------------------------------------------


def two_nodes() -> ClusterState:
    """n0 is the better-packed node (compact-first prefers it); n1 is empty."""
    return cluster(
        [gpu("n0-g0", "n0"), gpu("n1-g0", "n1")],
        [busy("busy", "n0", "n0-g0", "400", "40Gi")],
        nodes=2,
    )


def test_the_budget_without_measurements_is_noted_and_not_enforced() -> None:
    state = two_nodes()
    assert state.view.network_gbps is None
    result = simulate(WITH_BUDGET, state, one_gpu_pod(is_local_gpu="false"))
    assert result["notes"] == [BUDGET_NOTE]
    assert result["node"] == "n0"
    assert stage(result)["skipped"] is True
    # A remote worker without a configured budget gets no note.
    assert simulate(DEFAULT, state, one_gpu_pod(is_local_gpu="false"))["notes"] == []


def test_a_remote_multi_gpu_pod_without_measurements_still_gets_topology() -> None:
    state = cluster(
        [
            gpu("n0-g0", "n0", index=0, nvlinkPeers=["n0-g1"]),
            gpu("n0-g1", "n0", index=1, nvlinkPeers=["n0-g0"]),
        ]
    )
    result = simulate(WITH_BUDGET, state, two_gpu_pod(is_local_gpu="false"))
    assert result["notes"] == [BUDGET_NOTE]
    assert stage(result)["skipped"] is False
    assert plugin_scores(result, PLUGIN) == {"n0": 100}


@pytest.mark.parametrize("usage", [100.0, 100.5, 250.0])
def test_a_node_at_or_over_the_budget_is_rejected(usage: float) -> None:
    state = two_nodes()
    state.view.network_gbps = np.array([usage, 40.0], dtype=np.float64)
    result = simulate(WITH_BUDGET, state, one_gpu_pod(is_local_gpu="false"))
    assert (result["node"], result["gpus"]) == ("n1", ["n1-g0"])
    assert stage(result) == {"plugin": PLUGIN, "before": 2, "after": 1, "skipped": False}
    assert result["notes"] == []
    # Headroom: (100 - 40) / 100 of the score range.
    assert plugin_scores(result, PLUGIN) == {"n1": 60}


def test_just_under_the_budget_passes() -> None:
    state = two_nodes()
    state.view.network_gbps = np.array([99.9, 99.9], dtype=np.float64)
    result = simulate(WITH_BUDGET, state, one_gpu_pod(is_local_gpu="false"))
    assert result["node"] == "n0"
    assert stage(result)["after"] == 2
    assert plugin_scores(result, PLUGIN) == {"n0": 0, "n1": 0}


def test_every_node_over_the_budget_is_diagnosed() -> None:
    state = two_nodes()
    state.view.network_gbps = np.array([100.0, 140.0], dtype=np.float64)
    result = simulate(WITH_BUDGET, state, one_gpu_pod(is_local_gpu="false"))
    assert result["schedulable"] is False
    assert result["node"] is None
    assert result["diagnosis"]["unschedulablePlugins"] == [PLUGIN]
    assert result["diagnosis"]["reasons"] == [
        {"plugin": PLUGIN, "nodes": 2, "reason": BUDGET_REASON}
    ]
    assert result["diagnosis"]["message"] == f"0/2 nodes are available: 2 nodes: {BUDGET_REASON}"


@pytest.mark.parametrize(
    ("usage", "expected", "scores"),
    [
        # n1's headroom outweighs n0's better packing...
        ([90.0, 10.0], "n1", {"n0": 10, "n1": 90}),
        # ...and when n0 has the headroom too, it keeps the pod.
        ([10.0, 90.0], "n0", {"n0": 90, "n1": 10}),
    ],
)
def test_a_remote_worker_goes_to_the_node_with_more_headroom(
    usage: list[float], expected: str, scores: dict[str, int]
) -> None:
    state = two_nodes()
    state.view.network_gbps = np.array(usage, dtype=np.float64)
    result = simulate(WITH_BUDGET, state, one_gpu_pod(is_local_gpu="false"))
    assert result["node"] == expected
    assert plugin_scores(result, PLUGIN) == scores
    assert stage(result)["after"] == 2


def test_local_pods_ignore_the_measured_traffic() -> None:
    state = two_nodes()
    state.view.network_gbps = np.array([500.0, 0.0], dtype=np.float64)
    result = simulate(WITH_BUDGET, state, one_gpu_pod())
    assert result["node"] == "n0"
    assert stage(result)["skipped"] is True


def test_a_remote_multi_gpu_pod_blends_topology_and_headroom() -> None:
    state = cluster(
        [
            gpu("n0-g0", "n0", index=0, nvlinkPeers=["n0-g1"]),
            gpu("n0-g1", "n0", index=1, nvlinkPeers=["n0-g0"]),
            gpu("n1-g0", "n1", index=0),
            gpu("n1-g1", "n1", index=1),
        ],
        nodes=2,
    )
    state.view.network_gbps = np.array([50.0, 0.0], dtype=np.float64)
    result = simulate(WITH_BUDGET, state, two_gpu_pod(is_local_gpu="false"))
    # n0: (NVLink 100 + headroom 50) / 2; n1: (no topology 0 + headroom 100) / 2.
    assert plugin_scores(result, PLUGIN) == {"n0": 75, "n1": 50}
    assert (result["node"], result["gpus"]) == ("n0", ["n0-g0", "n0-g1"])
