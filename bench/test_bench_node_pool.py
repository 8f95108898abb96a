"""Planning one pool's upkeep at scale: a Karpenter pool of 1,000 nodes (8 H100s each, a
third of their VRAM taken), every node its NodeClaim's, with compaction on and 200 pods
waiting for GPUs, planned in full (capacity plan, compaction, rolling update) from the
reconcilers' cache. The baseline, measured in the same run on the same cache: gathering the
pool's view alone (its nodes, GPUs, pods and claims), which every plan starts with. Run with
`python -m pytest bench/test_bench_node_pool.py --benchmark-only`; the figure is printed at
the end (see conftest.py)."""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import DEFAULT_POOL_ANNOTATION, POOL_LABEL
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.reconciler import plan_for_pool
from tensorfusion.operator.nodepool.view import pool_view
from tensorfusion.operator.reconcilers.cache import ObjectCache
from tensorfusion.scheduler.fleet_generator import generate_fleet

NODES = 1000
GPUS_PER_NODE = 8
PENDING = 200
ROUNDS = 5
POOL = "p"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
CONFIG = NodePoolConfig()


def _pool() -> dict[str, object]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUPool",
        "metadata": {"name": POOL, "annotations": {DEFAULT_POOL_ANNOTATION: "true"}},
        "spec": {
            "capacityConfig": {"warmResources": {"vram": "800Gi"}},
            "nodeManagerConfig": {
                "provisioningMode": "Karpenter",
                "nodeCompaction": {"period": "5m"},
                "nodeProvisioner": {
                    "karpenterNodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": "gpu",
                    },
                    "gpuRequirements": [
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": ["p5.48xlarge"],
                        }
                    ],
                },
            },
        },
    }


def _pending(index: int) -> dict[str, object]:
    annotations = {
        "tensor-fusion.ai/tflops-request": "200",
        "tensor-fusion.ai/tflops-limit": "200",
        "tensor-fusion.ai/vram-request": "40Gi",
        "tensor-fusion.ai/vram-limit": "40Gi",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"waiting-{index}",
            "namespace": "default",
            "labels": {"tensor-fusion.ai/enabled": "true"},
            "annotations": annotations,
        },
        "spec": {"schedulerName": "tensor-fusion-scheduler", "containers": [{"name": "c"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }


@pytest.fixture(scope="module")
def cache() -> ObjectCache:
    fleet = generate_fleet(NODES, GPUS_PER_NODE, "H100", 0.3, pool=POOL)
    filled = ObjectCache()
    filled.put(_pool())
    for node in fleet.nodes:  # registered long ago: none is on its way
        node["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    for obj in (*fleet.nodes, *fleet.gpu_nodes, *fleet.gpus, *fleet.pods):
        filled.put(obj)
    for node in fleet.nodes:
        name = node["metadata"]["name"]
        filled.put(
            {
                "apiVersion": "karpenter.sh/v1",
                "kind": "NodeClaim",
                "metadata": {"name": f"claim-{name}", "labels": {POOL_LABEL: POOL}},
                "status": {"nodeName": name},
            }
        )
    for index in range(PENDING):
        filled.put(_pending(index))
    return filled


def test_plan_a_thousand_node_pool(
    benchmark: BenchmarkFixture, cache: ObjectCache, record_figure: Callable[[str], None]
) -> None:
    view_s = statistics.median(
        timeit.repeat(lambda: pool_view(cache, POOL, CONFIG), number=1, repeat=ROUNDS)
    )
    plan = benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: plan_for_pool(cache, POOL, CONFIG, NOW), rounds=ROUNDS
    )
    actions = plan.to_json()["actions"]
    assert any(a["kind"] == "create-nodeclaim" for a in actions)
    if benchmark.stats is not None:
        plan_s = benchmark.stats.stats.median
        record_figure(
            f"plan a Karpenter pool of {NODES} nodes x {GPUS_PER_NODE} GPUs with {PENDING} "
            f"pods waiting: {plan_s * 1e3:.0f} ms; gathering its view: {view_s * 1e3:.0f} ms "
            f"(medians): {plan_s / view_s:.1f}x the view"
        )
