"""Capacity planning for a pool: how many nodes of which instance type its pending pods'
GPU slices need (the fewest, and of those the cheapest), then its warm and minimum capacity,
under its maximum and its daily budget; nodes on their way count; an instance type the
catalog does not know is a named error."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tensorfusion.api.base import API_VERSION
from tensorfusion.api.gpu_links import POOL_LABEL
from tensorfusion.api.pool import GPUPool
from tensorfusion.errors import ConfigError
from tensorfusion.operator.nodepool.capacity_plan import ScaleDecision, scale_decision
from tensorfusion.operator.nodepool.config import NodePoolConfig
from tensorfusion.operator.nodepool.instance_types import CATALOG, shapes_for
from tensorfusion.operator.nodepool.provisioning import provisioned_cost
from tensorfusion.operator.nodepool.view import PoolView, pool_view
from tensorfusion.operator.reconcilers.cache import ObjectCache
from tests.kube.karpenter_standin import karpenter_pool, pending_pod
from tests.unit.operator.reconciler_objects import agent_gpu_node, gpu

SMALL, LARGE = CATALOG["g6.xlarge"], CATALOG["g6.12xlarge"]  # 1 and 4 L4s (121 TFLOPS, 24Gi)


def view_of(pool: dict[str, Any], *objects: dict[str, Any]) -> PoolView:
    cache = ObjectCache()
    for obj in (pool, *objects):
        cache.put(obj)
    view = pool_view(cache, pool["metadata"]["name"], NodePoolConfig())
    assert view is not None
    assert view.spec is not None, view.problem
    return view


def decide(
    pool: dict[str, Any],
    *objects: dict[str, Any],
    in_flight: tuple[str, ...] = (),
    cost_per_hour: str = "0",
) -> ScaleDecision:
    view = view_of(pool, *objects)
    assert view.spec is not None
    shapes = shapes_for(view.spec)
    return scale_decision(view, shapes, [CATALOG[t] for t in in_flight], Decimal(cost_per_hour))


def budgeted(instance_types: list[str], per_day: str, **capacity: Any) -> dict[str, Any]:
    return karpenter_pool(
        "p",
        instance_types,
        capacity=capacity,
        provisioner={"budget": {"budgetPerDay": per_day}},
    )


def types(decision: ScaleDecision) -> list[str]:
    return [shape.instance_type for shape in decision.add]


MIXED = [
    *(pending_pod(f"big-{i}", "100", "20Gi") for i in range(3)),  # one per GPU
    *(pending_pod(f"mid-{i}", "60", "12Gi") for i in range(6)),  # two per GPU
    *(pending_pod(f"small-{i}", "10", "2Gi") for i in range(8)),  # into the gaps
]


def test_mixed_slices_take_the_fewest_nodes_of_the_type_with_most_gpus() -> None:
    # 3 GPUs for the big pods (4Gi left on each: two small pods apiece), 3 for the mid
    # pods in pairs, the last 2 small pods on a 7th GPU: 7 GPUs, two 4-GPU nodes, though
    # the 1-GPU type is listed first.
    decision = decide(karpenter_pool("p", ["g6.xlarge", "g6.12xlarge"]), *MIXED)
    assert types(decision) == ["g6.12xlarge", "g6.12xlarge"]
    assert types(decide(karpenter_pool("p", ["g6.xlarge"]), *MIXED)) == ["g6.xlarge"] * 7
    assert decision.capped is None
    assert decision.unfit == ()
    assert len(decision.reasons) == 2
    assert decision.reasons[0].startswith("for pending pod default/")


@pytest.mark.parametrize(
    "listed",
    [["g6.xlarge", "g6.48xlarge"], ["g6.48xlarge", "g6.xlarge"]],
    ids=["small-first", "large-first"],
)
def test_one_small_pod_gets_the_cheapest_type_that_holds_it(listed: list[str]) -> None:
    # Either is one node; the 8-GPU type would cost $13.35/h against $0.80/h.
    decision = decide(karpenter_pool("p", listed), pending_pod("w", "10", "2Gi"))
    assert types(decision) == ["g6.xlarge"]


def test_the_last_node_is_the_cheapest_that_holds_what_is_left() -> None:
    whole = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(5)]  # a GPU each
    # Two nodes either way: four pods on a 4-GPU node, the fifth on a 1-GPU node.
    assert types(decide(karpenter_pool("p", ["g6.xlarge", "g6.12xlarge"]), *whole)) == [
        "g6.12xlarge",
        "g6.xlarge",
    ]
    nine = [*whole, *(pending_pod(f"v-{i}", "100", "20Gi") for i in range(4))]
    listed = ["g6.xlarge", "g6.12xlarge", "g6.48xlarge"]
    assert types(decide(karpenter_pool("p", listed), *nine)) == ["g6.48xlarge", "g6.xlarge"]
    six = [*whole[:4], pending_pod("pair", "100", "20Gi", gpus=2)]
    assert types(decide(karpenter_pool("p", listed), *six)) == ["g6.48xlarge"]


def test_one_node_of_another_model_is_taken_when_it_holds_every_pod() -> None:
    # Any model will do for the first pod; one A10G (70 TFLOPS, 24Gi) holds both.
    pods = [pending_pod("any", "50", "20Gi"), pending_pod("a10", "10", "1Gi", gpu_model="A10G")]
    decision = decide(karpenter_pool("p", ["g6.12xlarge", "g6.xlarge", "g5.xlarge"]), *pods)
    assert types(decision) == ["g5.xlarge"]


def test_pods_only_another_type_holds_do_not_make_a_type_look_too_small() -> None:
    pods = [
        pending_pod("l4", "100", "20Gi", gpu_model="L4"),
        pending_pod("a10", "10", "1Gi", gpu_model="A10G"),
    ]
    decision = decide(karpenter_pool("p", ["g6.12xlarge", "g6.xlarge", "g5.xlarge"]), *pods)
    assert types(decision) == ["g6.xlarge", "g5.xlarge"]


def test_pods_of_other_pools_and_plain_pods_are_not_provisioned_for() -> None:
    other = pending_pod("elsewhere", "100", "20Gi", gpupool="q")
    plain = pending_pod("plain", "100", "20Gi")
    plain["metadata"]["labels"] = {}
    plain["metadata"]["annotations"] = {}
    bound = pending_pod("bound", "100", "20Gi")
    bound["spec"]["nodeName"] = "n0"
    assert decide(karpenter_pool("p", ["g6.xlarge"]), other, plain, bound).add == ()


def test_a_pod_asking_k_gpus_gets_k_gpus_of_one_node() -> None:
    pods = [pending_pod(f"pair-{i}", "100", "20Gi", gpus=2) for i in range(3)]
    decision = decide(karpenter_pool("p", ["g6.xlarge", "g6.12xlarge"]), *pods)
    # Two pairs fill one 4-GPU node; the third pair needs a second node.
    assert types(decision) == ["g6.12xlarge", "g6.12xlarge"]


def test_a_pod_no_instance_type_holds_is_named_and_claims_nothing() -> None:
    eight = pending_pod("eight", "10", "1Gi", gpus=8)
    h100 = pending_pod("wants-h100", "10", "1Gi", gpu_model="H100")
    too_big = pending_pod("too-big", "10", "30Gi")
    decision = decide(karpenter_pool("p", ["g6.xlarge", "g6.12xlarge"]), eight, h100, too_big)
    assert decision.add == ()
    assert sorted(decision.unfit) == ["default/eight", "default/too-big", "default/wants-h100"]


def test_a_pod_asking_a_model_gets_a_type_with_that_model() -> None:
    pod = pending_pod("a10", "10", "1Gi", gpu_model="NVIDIA A10G")
    decision = decide(karpenter_pool("p", ["g6.xlarge", "g5.xlarge"]), pod)
    assert types(decision) == ["g5.xlarge"]


def test_warm_capacity_adds_nodes_of_the_first_type() -> None:
    pool = karpenter_pool(
        "p", ["g6.xlarge", "g6.12xlarge"], capacity={"warmResources": {"tflops": "200"}}
    )
    assert types(decide(pool)) == ["g6.xlarge", "g6.xlarge"]  # 2 x 121 >= 200
    assert decide(pool).reasons == ("to keep warmResources", "to keep warmResources")


def test_free_room_on_existing_gpus_counts_toward_warm_capacity() -> None:
    pool = karpenter_pool("p", ["g6.xlarge"], capacity={"warmResources": {"tflops": "200"}})
    existing = [agent_gpu_node("n0", "p"), gpu("n0", 0, "p"), gpu("n0", 1, "p")]  # 2 x 100
    assert decide(pool, *existing).add == ()
    used = gpu("n0", 1, "p")
    used["status"]["available"] = {"tflops": "99", "vram": "40Gi"}  # 199 free
    assert types(decide(pool, existing[0], existing[1], used)) == ["g6.xlarge"]


def test_minimum_capacity_adds_nodes_until_the_total_holds() -> None:
    pool = karpenter_pool("p", ["g6.12xlarge"], capacity={"minResources": {"vram": "100Gi"}})
    assert types(decide(pool)) == ["g6.12xlarge", "g6.12xlarge"]  # 96Gi, then 192Gi
    assert types(decide(pool, in_flight=("g6.12xlarge",))) == ["g6.12xlarge"]


def test_max_resources_caps_what_is_added_and_says_so() -> None:
    pods = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(6)]
    pool = karpenter_pool(
        "p", ["g6.xlarge", "g6.12xlarge"], capacity={"maxResources": {"tflops": "400"}}
    )
    decision = decide(pool, *pods)
    # A 4-GPU node (484) would pass the cap; three 1-GPU nodes (363) do not.
    assert types(decision) == ["g6.xlarge"] * 3
    assert decision.capped == "maxResources.tflops 400 reached: 3 pods stay pending"


def test_the_cap_also_stops_warm_capacity() -> None:
    pool = karpenter_pool(
        "p",
        ["g6.12xlarge"],
        capacity={"maxResources": {"vram": "100Gi"}, "warmResources": {"vram": "100Gi"}},
    )
    decision = decide(pool)
    assert types(decision) == ["g6.12xlarge"]
    assert decision.capped == "maxResources.vram 100Gi reached: warmResources not kept"


def test_nodes_on_their_way_take_the_pending_pods_first() -> None:
    pool = karpenter_pool("p", ["g6.xlarge", "g6.12xlarge"])
    assert decide(pool, *MIXED, in_flight=("g6.12xlarge", "g6.12xlarge")).add == ()
    assert types(decide(pool, *MIXED, in_flight=("g6.12xlarge",))) == ["g6.12xlarge"]


def test_an_unknown_instance_type_is_a_named_error() -> None:
    pool = karpenter_pool("p", ["g6.xlarge", "g9.huge"])
    spec = GPUPool.model_validate(pool).spec
    with pytest.raises(ConfigError) as caught:
        shapes_for(spec)
    assert caught.value.field == "nodeProvisioner.gpuRequirements[0].values"
    assert "'g9.huge'" in caught.value.message


def test_a_pool_naming_no_instance_type_is_a_named_error() -> None:
    pool = karpenter_pool("p", ["g6.xlarge"])
    pool["spec"]["nodeManagerConfig"]["nodeProvisioner"]["gpuRequirements"] = []
    with pytest.raises(ConfigError, match=r"^nodeProvisioner.gpuRequirements: names no"):
        shapes_for(GPUPool.model_validate(pool).spec)


def test_shapes_follow_the_order_the_pool_lists_them() -> None:
    spec = GPUPool.model_validate(karpenter_pool("p", ["g6.12xlarge", "g5.xlarge"])).spec
    assert [s.instance_type for s in shapes_for(spec)] == ["g6.12xlarge", "g5.xlarge"]
    assert [s.gpus for s in shapes_for(spec)] == [4, 1]


def test_a_node_on_its_way_of_a_type_the_pool_no_longer_lists_still_counts() -> None:
    pool = karpenter_pool("p", ["g6.xlarge"])
    small = pending_pod("small", "10", "2Gi")
    assert decide(pool, small, in_flight=("g5.xlarge",)).add == ()


def test_the_daily_budget_holds_back_the_node_that_would_pass_it() -> None:
    pods = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(3)]
    # 0.8048/h is 19.32/day: one node fits in 30 a day, two do not.
    decision = decide(budgeted(["g6.xlarge"], "30"), *pods)
    assert types(decision) == ["g6.xlarge"]
    assert decision.capped == "budgetPerDay 30 reached: 2 pods stay pending"
    assert decision.capped_by == "budgetPerDay"
    assert decide(budgeted(["g6.xlarge"], "60"), *pods).capped is None


def test_what_the_pool_already_costs_counts_against_its_budget() -> None:
    pool = budgeted(["g6.xlarge"], "30")
    pod = pending_pod("w", "100", "20Gi")
    decision = decide(pool, pod, cost_per_hour="0.5")  # (0.5 + 0.8048) x 24 = 31.3
    assert decision.add == ()
    assert decision.capped == "budgetPerDay 30 reached: 1 pods stay pending"
    assert types(decide(pool, pod, cost_per_hour="0.4")) == ["g6.xlarge"]  # 28.9


def test_a_type_the_budget_still_allows_is_taken_when_the_largest_is_not() -> None:
    pods = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(5)]
    # 4.6016/h (110/day) passes 100 a day; 1-GPU nodes do until the fifth (96.6/day).
    decision = decide(budgeted(["g6.xlarge", "g6.12xlarge"], "100"), *pods)
    assert types(decision) == ["g6.xlarge"] * 5
    assert decision.capped is None
    decision = decide(budgeted(["g6.xlarge", "g6.12xlarge"], "80"), *pods)
    assert types(decision) == ["g6.xlarge"] * 4
    assert decision.capped == "budgetPerDay 80 reached: 1 pods stay pending"


def test_the_budget_also_stops_warm_capacity() -> None:
    pool = budgeted(["g6.xlarge"], "50", warmResources={"tflops": "300"})
    decision = decide(pool)
    assert types(decision) == ["g6.xlarge"] * 2  # a third would be 57.9 a day
    assert decision.capped == "budgetPerDay 50 reached: warmResources not kept"


def test_the_max_cap_met_first_is_the_one_named() -> None:
    pods = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(3)]
    pool = budgeted(["g6.xlarge"], "30", maxResources={"tflops": "100"})
    decision = decide(pool, *pods)
    assert decision.add == ()
    assert decision.capped == "maxResources.tflops 100 reached: 3 pods stay pending"
    assert decision.capped_by == "maxResources"


def test_a_pool_without_a_budget_is_not_limited_by_cost() -> None:
    pods = [pending_pod(f"w-{i}", "100", "20Gi") for i in range(3)]
    decision = decide(karpenter_pool("p", ["g6.xlarge"]), *pods, cost_per_hour="1000")
    assert types(decision) == ["g6.xlarge"] * 3


@pytest.mark.parametrize("per_day", ["-5", "lots"])
def test_a_malformed_budget_makes_the_spec_invalid(per_day: str) -> None:
    cache = ObjectCache()
    cache.put(budgeted(["g6.xlarge"], per_day))
    view = pool_view(cache, "p", NodePoolConfig())
    assert view is not None
    assert view.spec is None
    assert view.problem is not None
    assert "budgetPerDay" in view.problem


def gpu_node_claim(name: str, instance_type: str, **status: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "GPUNodeClaim",
        "metadata": {"name": name, "labels": {POOL_LABEL: "p"}},
        "spec": {"instanceType": instance_type},
        "status": status,
    }


def test_a_claim_not_launched_yet_counts_at_its_types_price() -> None:
    pool = budgeted(["g6.xlarge"], "30")
    waiting = gpu_node_claim("waiting", "g6.12xlarge")
    launched = gpu_node_claim("launched", "g6.xlarge", costPerHour="1.5")
    unknown = gpu_node_claim("by-hand", "x9.huge")
    assert provisioned_cost(view_of(pool, waiting)) == Decimal("4.6016")
    assert provisioned_cost(view_of(pool, waiting, launched, unknown)) == Decimal("6.1016")
