"""Defaults, round trips and forward compatibility of the resource models."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from tensorfusion.api.cluster import TensorFusionCluster
from tensorfusion.api.cron import check_cron
from tensorfusion.api.duration import parse_duration
from tensorfusion.api.dynamic_config import DynamicConfig
from tensorfusion.api.node import MetadataOptions
from tensorfusion.api.pool import GPUPool, NodeRollingUpdatePolicy, Oversubscription
from tensorfusion.api.quantity import Quantity
from tensorfusion.api.scheduler_config import (
    SCHEDULER_NAME,
    GPUResourcesFitArgs,
    KubeSchedulerConfiguration,
)
from tensorfusion.api.scheduling_template import SchedulingConfigTemplate
from tensorfusion.api.validate import validate_text
from tensorfusion.api.workload import WorkloadProfile


def test_oversubscription_defaults_are_upstreams() -> None:
    over = Oversubscription()
    assert (over.tflops_oversell_ratio, over.vram_expand_to_host_mem) == (500, 50)
    assert over.vram_expand_to_host_disk == 70


def test_placement_defaults_to_compact_first() -> None:
    template = SchedulingConfigTemplate.model_validate(
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "SchedulingConfigTemplate",
            "metadata": {"name": "t"},
            "spec": {},
        }
    )
    assert template.spec.placement.mode == "CompactFirst"


def test_pool_round_trips_by_alias_with_exact_quantities() -> None:
    source = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "GPUPool",
        "metadata": {"name": "demo-shared"},
        "spec": {"capacityConfig": {"maxResources": {"tflops": "1.5k", "vram": "16Gi"}}},
    }
    pool = GPUPool.model_validate(source)
    assert pool.spec.capacity_config.max_resources is not None
    assert pool.spec.capacity_config.max_resources.vram == Quantity.parse("17179869184")
    dumped = pool.model_dump(exclude_unset=True)
    assert dumped["spec"]["capacityConfig"]["maxResources"] == {"tflops": "1500", "vram": "16Gi"}
    assert GPUPool.model_validate(dumped) == pool


def test_unknown_fields_are_kept_and_listed() -> None:
    text = """
apiVersion: tensor-fusion.ai/v1
kind: TensorFusionCluster
metadata: {name: c}
spec:
  futureField: 1
  gpuPools:
  - name: p
    specTemplate: {capacityConfig: {oversubscription: {tflopsOversellRatio: 200, extra: x}}}
"""
    cluster = TensorFusionCluster.model_validate(yaml.safe_load(text))
    assert cluster.spec.model_extra == {"futureField": 1}
    assert sorted(cluster.unknown_fields()) == [
        "spec.futureField",
        "spec.gpuPools[0].specTemplate.capacityConfig.oversubscription.extra",
    ]
    (result,) = validate_text(text)
    assert result.ok
    assert [issue.path for issue in result.warnings] == sorted(cluster.unknown_fields())


def test_checks_upstream_does_not_make_are_advice_not_errors() -> None:
    pool = GPUPool.model_validate(
        {
            "apiVersion": "tensor-fusion.ai/v1",
            "kind": "GPUPool",
            "metadata": {"name": "p"},
            "spec": {
                "nodeManagerConfig": {"nodePoolRollingUpdatePolicy": {"batchPercentage": 0}},
                "qosConfig": {"definitions": [{"priority": 500}], "pricing": [{"qos": "low"}]},
            },
            "status": {"readyNodes": -1},
        }
    )
    assert pool.spec.node_manager_config.node_pool_rolling_update_policy is not None
    assert pool.spec.node_manager_config.node_pool_rolling_update_policy.batch_percentage == 0
    assert list(pool.advice()) == [
        (
            "spec.nodeManagerConfig.nodePoolRollingUpdatePolicy.batchPercentage",
            "is 0, below 1: no node would ever be updated",
        ),
        ("spec.qosConfig.definitions[0].name", "missing: the definition applies to no QoS level"),
        ("spec.qosConfig.definitions[0].priority", "is 500, outside 1-100"),
        ("status.readyNodes", "is -1, below 0"),
    ]


def test_node_class_metadata_options_are_upstreams() -> None:
    options = MetadataOptions.model_validate({"httpEndpoint": False})
    assert (options.http_endpoint, options.http_protocol_ipv6) == (False, False)
    assert (options.http_put_response_hop_limit, options.http_tokens) == (1, "required")
    (result,) = validate_text(
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUNodeClass\nmetadata: {name: c}\n"
        "spec: {metadataOptions: {httpEndpoint: enabled}}\n"
    )
    assert [str(issue) for issue in result.errors] == [
        "spec.metadataOptions.httpEndpoint: must be a boolean (true or false, unquoted), "
        "got string 'enabled'"
    ]


def test_workload_profile_limits_cover_requests() -> None:
    base = {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "WorkloadProfile",
        "metadata": {"name": "w", "namespace": "default"},
    }
    ok = WorkloadProfile.model_validate(
        {
            **base,
            "spec": {
                "resources": {
                    "requests": {"tflops": "100", "vram": "3Gi"},
                    "limits": {"tflops": "200", "vram": "3Gi"},
                }
            },
        }
    )
    assert ok.spec.gpu_count == 1
    (result,) = validate_text(
        yaml.safe_dump(
            {
                **base,
                "spec": {"resources": {"requests": {"vram": "4Gi"}, "limits": {"vram": "3Gi"}}},
            }
        )
    )
    assert [str(i) for i in result.errors] == [
        "spec.resources.limits.vram: must be >= requests.vram (limit 3Gi < request 4Gi)"
    ]


def test_guide_scheduler_config_args_are_typed() -> None:
    config = KubeSchedulerConfiguration.model_validate(
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "profiles": [
                {
                    "schedulerName": SCHEDULER_NAME,
                    "pluginConfig": [
                        {"name": "GPUResourcesFit", "args": {"maxWorkerPerNode": 128}},
                    ],
                }
            ],
        }
    )
    args = config.profiles[0].plugin_config[0].typed_args()
    assert isinstance(args, GPUResourcesFitArgs)
    assert (args.max_worker_per_node, args.vram_weight, args.tflops_weight) == (128, 0.7, 0.3)


def test_dynamic_config_defaults() -> None:
    config = DynamicConfig.model_validate({})
    assert (config.metrics_ttl, config.metrics_format, config.alert_rules) == ("30d", "influx", [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("15s", timedelta(seconds=15)),
        ("1h30m", timedelta(minutes=90)),
        ("30d", timedelta(days=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "1y", "-5m", "15 seconds"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "expr",
    [
        "1 1 * * *",
        "*/5 * * * *",
        "0 9-17 * * mon-fri",
        "@daily",
        "0 0 1,15 jan,jul 0",
        "0 0 29 2 *",  # leap years only
        "0 0 31 2 mon",  # a day of week is enough when both day fields are given
    ],
)
def test_good_cron(expr: str) -> None:
    check_cron(expr)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("61 1 * * *", "minute: 61 is outside 0-59"),
        ("1 1 * *", "must have 5 fields"),
        ("* 25 * * *", "hour"),
        ("* * 0 * *", "day of month"),
        ("* * * 13 *", "month"),
        ("*/0 * * * *", "step"),
        ("5-1 * * * *", "runs backwards"),
        ("x * * * *", "not a number"),
        ("0 0 30 2 *", "day of month and month: '0 0 30 2 \\*' never matches any date"),
        ("0 0 31 apr,jun *", "never matches any date"),
        ("0 0 30-31 2 *", "never matches any date"),
    ],
)
def test_bad_cron(expr: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        check_cron(expr)


def test_a_maintenance_window_that_never_opens_is_refused_with_its_place() -> None:
    window = {"maintenanceWindow": {"includes": ["1 1 * * *", "0 0 30 2 *"]}}
    with pytest.raises(
        ValueError, match=r"maintenanceWindow\.includes\.1\n.*never matches any date"
    ):
        NodeRollingUpdatePolicy.model_validate(window)
