"""Manifests written for upstream TensorFusion pass `tensor-fusion validate`.

Objects of every kind in `shared/spec/upstream-crd-fields.md` are drawn within upstream's
types, enums and bounds and must validate without errors (warnings are allowed: a check of
ours that upstream does not make warns). KEPT_CHECKS lists the few checks that stay errors
because accepting the value would make the product do the wrong thing; for the fields they
cover, objects are drawn within our check instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorfusion.api.kinds import KINDS_BY_NAME
from tensorfusion.api.node import INT32_MAX
from tensorfusion.api.not_acted import COMPONENTS
from tensorfusion.api.null_pruning import prune_nulls
from tensorfusion.api.pool import CAPACITY_TYPE_KEY, CAPACITY_TYPE_VALUES
from tensorfusion.api.quantity import Quantity
from tensorfusion.api.validate import validate_text
from tests.unit.test_validate_bad_inputs import run_validate
from tests.upstream_fields import (
    SPEC_FILE,
    Field,
    Kind,
    exact_quantities,
    objects,
    read_kinds,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "upstream"
POOL_SPECS = ("spec", "spec.gpuPools[].specTemplate")
"""Where a pool spec sits: a GPUPool's spec, and each pool of a TensorFusionCluster."""


def _upstream_kinds() -> dict[str, Kind]:
    if not SPEC_FILE.is_file():
        raise FileNotFoundError(
            f"{SPEC_FILE} is missing: the upstream field list is kept in shared/spec, "
            "beside the repository"
        )
    return read_kinds(SPEC_FILE.read_text(encoding="utf-8"))


UPSTREAM = _upstream_kinds()


@dataclass(frozen=True)
class KeptCheck:
    """A check of ours that upstream does not make, kept as an error."""

    name: str
    reason: str
    fields: Callable[[str, Field], bool] = lambda path, node: False
    """Which generated fields draw from `within` instead of upstream's whole range."""
    within: Callable[[str, Field], st.SearchStrategy[Any]] | None = None
    repair: Callable[[dict[str, Any]], None] | None = None
    """For a check across fields: bring a drawn object within it."""


def _ends(*suffixes: str) -> Callable[[str, Field], bool]:
    return lambda path, node: path.endswith(suffixes)


def _at(obj: Any, path: str) -> Iterator[Any]:
    """The values at a path of `objects`' form (`spec.gpuPools[].name`) within `obj`."""
    if not path:
        yield obj
        return
    head, _, rest = path.partition(".")
    key, each = head.removesuffix("[]"), head.endswith("[]")
    value = obj.get(key) if isinstance(obj, dict) else None
    for item in (value or []) if each and isinstance(value, list) else [value]:
        if item is not None:
            yield from _at(item, rest)


def _requirements(path: str, node: Field) -> st.SearchStrategy[dict[str, Any]]:
    key_field = node.properties.get("key", Field("string"))
    operator_field = node.properties.get("operator", Field("string"))
    keys = (
        st.sampled_from(key_field.enum)
        if key_field.enum
        else st.from_regex(r"[a-z]{1,8}", fullmatch=True)
    )
    operators = operator_field.enum or ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")

    def requirement(key: str, operator: str, words: list[str], number: int) -> dict[str, Any]:
        if operator in ("Exists", "DoesNotExist"):
            values: list[str] = []
        elif key == CAPACITY_TYPE_KEY:
            values, operator = [w for w in CAPACITY_TYPE_VALUES if w in words] or ["spot"], "In"
        elif operator in ("Gt", "Lt"):
            values = [str(number)]
        else:
            values = words
        return {"key": key, "operator": operator, "values": values}

    words = st.lists(st.sampled_from([*CAPACITY_TYPE_VALUES, "a", "b"]), min_size=1, max_size=2)
    return st.builds(requirement, keys, st.sampled_from(operators), words, st.integers(-9, 9))


def _taints(path: str, node: Field) -> st.SearchStrategy[dict[str, Any]]:
    effects = node.properties["effect"].enum
    return st.fixed_dictionaries(
        {"key": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
        optional={
            "value": st.from_regex(r"[a-z]{0,8}", fullmatch=True),
            "effect": st.sampled_from(effects),
        },
    )


def _raise_to(low: dict[str, Any], high: dict[str, Any]) -> None:
    """Raise each amount of `high` to at least the same amount of `low`."""
    for dim, amount in low.items():
        if dim in high and Quantity.coerce(high[dim]) < Quantity.coerce(amount):
            high[dim] = amount


def _pool_capacity_within_max(obj: dict[str, Any]) -> None:
    for pool in POOL_SPECS:
        for capacity in _at(obj, f"{pool}.capacityConfig"):
            top = capacity.get("maxResources")
            for bound in ("minResources", "warmResources"):
                if top is not None and bound in capacity:
                    _raise_to(capacity[bound], top)


def _limits_cover_requests(obj: dict[str, Any]) -> None:
    for resources in _at(obj, "spec.resources"):
        _raise_to(resources["requests"], resources["limits"])


def _indices_match_count(obj: dict[str, Any]) -> None:
    for spec in _at(obj, "spec"):
        if spec.get("gpuIndices"):
            spec["gpuCount"] = len(spec["gpuIndices"])


def _pools_named_once(obj: dict[str, Any]) -> None:
    # Drawn names have at most 12 characters: with the cluster's, they stay within 63.
    seen_default = False
    for index, pool in enumerate(next(_at(obj, "spec.gpuPools"), [])):
        pool["name"] = f"{pool.get('name', 'pool')}-{index}"
        if pool.get("isDefault") and seen_default:
            pool["isDefault"] = False
        seen_default = seen_default or pool.get("isDefault") is True


KEPT_CHECKS: tuple[KeptCheck, ...] = (
    KeptCheck(
        "quantities are non-negative and exact",
        "TFLOPS and VRAM amounts feed the scheduler's capacity arithmetic, where a negative one "
        "would create capacity; Kubernetes rounds amounts finer than 1n up and caps those "
        "beyond 2**63-1, so the amount used would not be the amount written",
        lambda path, node: node.type == "quantity",
        lambda path, node: exact_quantities(),
    ),
    KeptCheck(
        "amounts written as strings are quantities",
        "the provisioner compares spending with the budgets and sizes disks by volumeSize: "
        "a budget that is not a number would cap nothing",
        _ends(".budgetPerDay", ".budgetPerMonth", ".budgetPerQuarter", ".ebs.volumeSize"),
        lambda path, node: exact_quantities().map(str),
    ),
    KeptCheck(
        "durations are durations",
        "compaction and rolling updates are timed by them: text that is no duration gives "
        "the operator no period, pause or deadline to keep",
        _ends(".nodeCompaction.period", ".batchInterval", ".maxDuration"),
        lambda path, node: st.from_regex(r"[1-9][0-9]{0,2}(ms|s|m|h)", fullmatch=True),
    ),
    KeptCheck(
        "maintenance windows are cron schedules",
        "a rolling update runs only inside the window: a schedule that cannot be read opens "
        "no time (or any time) to update nodes",
        _ends(".maintenanceWindow.includes[]"),
        lambda path, node: st.sampled_from(["0 3 * * *", "*/15 1-5 * * mon-fri", "@daily"]),
    ),
    KeptCheck(
        "node selectors and taints follow Kubernetes' rules",
        "the scheduler matches nodes with them and the provisioner writes them into Nodes and "
        "Karpenter NodePools: an unknown operator cannot be evaluated, and the API server "
        "refuses empty keys, values that do not fit the operator and unknown capacity types",
        _ends("matchExpressions[]", "matchFields[]", "Requirements[]"),
        _requirements,
    ),
    KeptCheck(
        "taints have a key",
        "a provisioned node carries these taints, and the API server refuses a Node whose "
        "taint has no key",
        _ends("Taints[]"),
        _taints,
    ),
    KeptCheck(
        "GPU index and NUMA node are device numbers",
        "the scheduler and the agent pick the device and the NUMA-aware placement by them and "
        "hold them as int32: a negative index names no device, larger numbers do not fit",
        _ends("status.index", "status.numaNode"),
        lambda path, node: st.integers(-1 if path.endswith("numaNode") else 0, INT32_MAX),
    ),
    KeptCheck(
        "pool names are unique DNS labels within 63 characters with the cluster's",
        "each pool becomes the GPUPool `<cluster>-<name>`: another name makes no object (or "
        "the same object twice), and two default pools leave pods that name none ambiguous",
        _ends("spec.gpuPools[].name"),
        lambda path, node: st.from_regex(r"[a-z]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True),
        _pools_named_once,
    ),
    KeptCheck(
        "minResources and warmResources are within maxResources",
        "maxResources caps the pool's total capacity: a minimum or a warm reserve above it "
        "leaves no pool size that satisfies both",
        repair=_pool_capacity_within_max,
    ),
    KeptCheck(
        "a workload's limits cover its requests",
        "requests are reserved on physical capacity and limits enforced on virtual capacity: "
        "a limit below its request takes away what was reserved (pod annotations are held to "
        "the same rule)",
        repair=_limits_cover_requests,
    ),
    KeptCheck(
        "gpuIndices lists gpuCount GPUs",
        "both say how many GPUs the workload gets: when they disagree, either choice places "
        "it wrong",
        repair=_indices_match_count,
    ),
)


def _choose(path: str, node: Field) -> st.SearchStrategy[Any] | None:
    for check in KEPT_CHECKS:
        if check.within is not None and check.fields(path, node):
            return check.within(path, node)
    return None


def _repaired(obj: dict[str, Any]) -> dict[str, Any]:
    for check in KEPT_CHECKS:
        if check.repair is not None:
            check.repair(obj)
    return obj


def test_upstream_field_list_names_our_kinds() -> None:
    assert sorted(UPSTREAM) == sorted(KINDS_BY_NAME)
    for name, kind in UPSTREAM.items():
        assert (kind.scope, kind.plural) == (KINDS_BY_NAME[name].scope, KINDS_BY_NAME[name].plural)
        assert kind.paths, name


@pytest.mark.parametrize("kind", sorted(UPSTREAM))
def test_objects_within_upstreams_schema_validate(kind: str) -> None:
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(objects(UPSTREAM[kind], _choose).map(_repaired))
    def check(obj: dict[str, Any]) -> None:
        (result,) = validate_text(yaml.safe_dump(obj, allow_unicode=True))
        assert result.ok, [str(issue) for issue in result.errors]

    check()


# --- upstream's own manifests, through the command ----------------------------------------
NULL_DROPPED = "null: the API server drops null fields, so it reads as absent"


def _lines(run_stdout: str, prefix: str) -> list[str]:
    return [line for line in run_stdout.splitlines() if line.startswith(prefix)]


def test_min_resources_above_warm_resources_is_accepted() -> None:
    path = FIXTURES / "pool-capacity.yaml"
    run = run_validate(path)
    assert run.code == 0, run.output
    assert run.stdout.splitlines() == [
        f"{path}:1: GPUPool/tensor-fusion-cluster-shared: OK",
        f"{path}:29: TensorFusionCluster/tensor-fusion-cluster: OK",
    ]


def test_min_and_warm_above_max_are_each_refused() -> None:
    text = yaml.safe_dump(
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUPool",
            "metadata": {"name": "p"},
            "spec": {
                "capacityConfig": {
                    "minResources": {"tflops": "200", "vram": "1Gi"},
                    "warmResources": {"tflops": "10", "vram": "8Gi"},
                    "maxResources": {"tflops": "100", "vram": "4Gi"},
                }
            },
        }
    )
    (result,) = validate_text(text)
    assert [str(issue) for issue in result.errors] == [
        "spec.capacityConfig.minResources.tflops: must be <= maxResources.tflops (200 > 100)",
        "spec.capacityConfig.warmResources.vram: must be <= maxResources.vram (8Gi > 4Gi)",
    ]


def test_null_parts_read_as_absent_with_a_warning() -> None:
    path = FIXTURES / "null-fields.yaml"
    run = run_validate(path)
    assert run.code == 0, run.output
    assert _lines(run.stdout, "  warning: ") == [
        f"  warning: spec: {NULL_DROPPED}",
        f"  warning: spec.capacityConfig.oversubscription: {NULL_DROPPED}",
        f"  warning: status: {NULL_DROPPED}",
        "  warning: spec.componentConfig.hypervisor: accepted and kept, but tensor-fusion does "
        f"not act on it yet (upstream feature: {COMPONENTS})",
    ]
    assert "  error:" not in run.stdout


def test_null_required_field_is_dropped_then_missing() -> None:
    text = (
        "apiVersion: tensor-fusion.ai/v1\nkind: TensorFusionConnection\n"
        "metadata: {name: c, namespace: default}\nspec:\n  workloadName:\n  clientPod: client-0\n"
    )
    (result,) = validate_text(text)
    assert [str(issue) for issue in result.warnings] == [f"spec.workloadName: {NULL_DROPPED}"]
    assert [str(issue) for issue in result.errors] == [
        "spec.workloadName: required field is missing"
    ]


def test_nulls_are_kept_where_the_schema_is_free_form() -> None:
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"a": {}}},
                    },
                },
            },
        },
    }
    data = {
        "metadata": {"labels": None},
        "spec": {
            "template": {"nodeSelector": None},
            "labels": {"a": None, "b": "x"},
            "items": [{"a": None}, None],
            "unknown": None,
        },
    }
    kept, dropped = prune_nulls(data, schema)
    assert kept == {
        "metadata": {"labels": None},
        "spec": {
            "template": {"nodeSelector": None},
            "labels": {"b": "x"},
            "items": [{}, None],
            "unknown": None,
        },
    }
    assert dropped == ["spec.labels['a']", "spec.items[0].a"]


def test_connection_with_upstreams_fields_is_accepted() -> None:
    path = FIXTURES / "connection.yaml"
    run = run_validate(path)
    assert run.code == 0, run.output
    assert run.stdout.splitlines() == [
        f"{path}:1: TensorFusionConnection/pytorch-example-client-7d9f8: OK"
    ]


def test_connection_fields_upstream_does_not_have_are_unknown() -> None:
    text = (
        "apiVersion: tensor-fusion.ai/v1\nkind: TensorFusionConnection\n"
        "metadata: {name: c, namespace: default}\n"
        "spec: {workloadName: w, clientPod: client-0, poolName: shared, resources: {}}\n"
        "status: {phase: Running, connectionURL: u, workerName: w-0, qosClass: high}\n"
    )
    (result,) = validate_text(text)
    assert result.ok
    assert [str(issue) for issue in result.warnings] == [
        f"{path}: unknown field (kept, but tensor-fusion does not use it)"
        for path in ("spec.poolName", "spec.resources", "status.qosClass")
    ]
