"""Upstream fields that tensor-fusion accepts but does not act on yet: kept as written (through
the store, and in the CRD schema an API server prunes by), one `validate` warning per field
present, and bad values still refused with the field named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tensorfusion.api.crd import openapi_schema
from tensorfusion.api.kinds import KINDS_BY_NAME
from tensorfusion.api.not_acted import (
    AUTOSCALING,
    FREEZE,
    GANG,
    ISOLATION,
    NOT_ACTED,
    PARTITIONS,
)
from tensorfusion.api.validate import validate_text
from tensorfusion.store.local import LocalStore
from tests.unit.test_upstream_crd_fields import UPSTREAM
from tests.unit.test_validate_bad_inputs import run_validate

WORKLOAD: dict[str, Any] = {
    "apiVersion": "tensor-fusion.ai/v1",
    "kind": "TensorFusionWorkload",
    "metadata": {"name": "w", "namespace": "default"},
    "spec": {
        "poolName": "shared",
        "isolation": "partitioned",
        "partitionTemplateId": "1g.10gb",
        "gangScheduling": {"minMembers": 2, "timeout": "5m"},
        "autoScalingConfig": {
            "autoSetResources": {"enable": True, "targetResource": "all"},
            "cronScalingRules": [
                {
                    "name": "night",
                    "start": "0 22 * * *",
                    "end": "0 6 * * *",
                    "desiredResources": {
                        "requests": {"tflops": "10", "vram": "4Gi"},
                        "limits": {"tflops": "20", "vram": "4Gi", "compute": "50"},
                    },
                }
            ],
        },
    },
}
TEMPLATE: dict[str, Any] = {
    "apiVersion": "tensor-fusion.ai/v1",
    "kind": "SchedulingConfigTemplate",
    "metadata": {"name": "t"},
    "spec": {
        "placement": {"mode": "CompactFirst"},
        "hypervisor": {
            "autoFreezeAndResume": {
                "autoFreeze": [{"qos": "low", "enable": True, "freezeToMemTTL": "5m"}]
            }
        },
    },
}
NOT_ACTED_MESSAGE = "accepted and kept, but tensor-fusion does not act on it yet"


def _warnings(obj: dict[str, Any]) -> list[str]:
    (result,) = validate_text(yaml.safe_dump(obj))
    assert result.ok, [str(issue) for issue in result.errors]
    return [str(issue) for issue in result.warnings]


def test_one_warning_per_not_acted_field_present() -> None:
    assert _warnings(WORKLOAD) == [
        f"spec.autoScalingConfig: {NOT_ACTED_MESSAGE} (upstream feature: {AUTOSCALING})",
        f"spec.gangScheduling: {NOT_ACTED_MESSAGE} (upstream feature: {GANG})",
        f"spec.partitionTemplateId: {NOT_ACTED_MESSAGE} (upstream feature: {PARTITIONS})",
        f"spec.isolation: 'partitioned' is {NOT_ACTED_MESSAGE} (upstream feature: {ISOLATION})",
    ]
    assert _warnings(TEMPLATE) == [
        f"spec.hypervisor.autoFreezeAndResume: {NOT_ACTED_MESSAGE} (upstream feature: {FREEZE})"
    ]


def test_the_mode_acted_on_and_absent_fields_do_not_warn() -> None:
    plain = copy.deepcopy(WORKLOAD)
    plain["spec"] = {"poolName": "shared", "isolation": "soft"}
    assert _warnings(plain) == []


def test_fields_of_every_pool_of_a_cluster_warn_at_their_own_path() -> None:
    pool = {"nodeManagerConfig": {"isolationModeRules": [{"mode": "hard", "selector": {}}]}}
    cluster = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "TensorFusionCluster",
        "metadata": {"name": "c"},
        "spec": {
            "gpuPools": [
                {"name": "a", "specTemplate": pool},
                {"name": "b", "specTemplate": {}},
                {"name": "d", "specTemplate": pool},
            ]
        },
    }
    assert [line.split(":")[0] for line in _warnings(cluster)] == [
        "spec.gpuPools[0].specTemplate.nodeManagerConfig.isolationModeRules",
        "spec.gpuPools[2].specTemplate.nodeManagerConfig.isolationModeRules",
    ]


def test_every_listed_field_is_an_upstream_field_of_our_crd() -> None:
    for kind, entries in NOT_ACTED.items():
        schema = openapi_schema(KINDS_BY_NAME[kind])
        for entry in entries:
            assert entry.path in UPSTREAM[kind].paths, (kind, entry.path)
            node: Any = schema
            for step in entry.path.split("."):
                node = node["properties"][step.removesuffix("[]")]
                node = node["items"] if step.endswith("[]") else node
            assert node, (kind, entry.path)


@pytest.mark.parametrize("obj", [WORKLOAD, TEMPLATE], ids=lambda o: o["kind"])
def test_not_acted_fields_round_trip_through_the_store(obj: dict[str, Any]) -> None:
    with LocalStore(":memory:") as store:
        store.create(obj)
        kept = store.get(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
    assert kept["spec"] == obj["spec"]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            lambda s: s["gangScheduling"].update(minMembers=-1),
            "spec.gangScheduling.minMembers",
            "must be >= 0, got -1",
        ),
        (
            lambda s: s.update(isolation="strict"),
            "spec.isolation",
            "'shared', 'soft', 'hard' or 'partitioned'",
        ),
        (
            lambda s: s["autoScalingConfig"]["cronScalingRules"][0]["desiredResources"].pop(
                "limits"
            ),
            "spec.autoScalingConfig.cronScalingRules[0].desiredResources.limits",
            "required",
        ),
        (
            lambda s: s["autoScalingConfig"].update(externalScaler={"enable": "yes"}),
            "spec.autoScalingConfig.externalScaler.enable",
            "boolean",
        ),
    ],
)
def test_bad_values_of_not_acted_fields_are_refused_naming_the_field(
    change: Any, path: str, message: str, tmp_path: Path
) -> None:
    bad = copy.deepcopy(WORKLOAD)
    change(bad["spec"])
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(bad))
    run = run_validate(file)
    assert run.code == 1, run.output
    errors = [line for line in run.stdout.splitlines() if line.startswith("  error: ")]
    assert len(errors) == 1, run.output
    assert errors[0].startswith(f"  error: {path}: "), run.output
    assert message in errors[0], run.output
