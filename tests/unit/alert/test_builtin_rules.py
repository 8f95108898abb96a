"""Each built-in rule on the embedded sink: data that triggers it and data that does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tensorfusion.alert.builtin_rules import WATCHDOG, builtin_rules, default_dynamic_config
from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.api.duration import parse_duration
from tensorfusion.api.dynamic_config import AlertRule
from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import FieldValue, Point
from tensorfusion.scheduler.allocation_recorder import POOL_METRICS, AllocationRecorder
from tests.unit.alert.conftest import SECOND_NS
from tests.unit.scheduler.test_allocation_recorder import Source, cluster

NOW = 1_700_000_000 * SECOND_NS

# Each table's tags and calm field values; a case overrides fields per sample.
TABLES: dict[str, tuple[dict[str, str], dict[str, FieldValue]]] = {
    "tf_worker_usage": (
        {
            "workload": "train",
            "worker": "train-0",
            "namespace": "ml",
            "pool": "p",
            "node": "n1",
            "uuid": "GPU-0",
        },
        {"compute_throttled_cnt": 4, "vram_resumed_cnt": 2, "compute_percentage": 50.0},
    ),
    "tf_gpu_usage": (
        {"node": "n1", "pool": "p", "uuid": "GPU-0"},
        {"memory_percentage": 50.0, "compute_percentage": 50.0, "temperature": 60.0},
    ),
    "tf_node_metrics": (
        {"node": "n1", "pool": "p", "phase": "Running"},
        {
            "allocated_tflops": 100.0,
            "allocated_tflops_percent": 50.0,
            "allocated_vram_bytes": 10**9,
            "allocated_vram_percent": 50.0,
            "gpu_count": 4,
        },
    ),
    "tf_system_metrics": ({}, {"total_allocation_fail_cnt": 3, "total_allocation_success_cnt": 9}),
    "tf_pool_metrics": (
        {"pool": "p", "phase": "Running"},
        {"capacity_capped": 0, "capped_by": "", "cost_per_hour": 2.0, "budget_per_day": 100.0},
    ),
}
CAP = "maxResources.tflops 400 reached: 3 pods stay pending"

TFLOPS_FULL: dict[str, FieldValue] = {"allocated_tflops_percent": 97.0}
VRAM_FULL: dict[str, FieldValue] = {"allocated_vram_percent": 97.0}
# rule -> (table, samples that trigger it, instance it fires for)
TRIGGERS: dict[str, tuple[str, list[dict[str, FieldValue]], str]] = {
    "WorkerTFlopsThrottled": (
        "tf_worker_usage",
        [{"compute_throttled_cnt": 4}, {"compute_throttled_cnt": 7}],
        "train-0-GPU-0",
    ),
    "WorkerVRAMSwitchCountIncreasing": (
        "tf_worker_usage",
        [{"vram_resumed_cnt": 2}, {"vram_resumed_cnt": 3}],
        "train-0-GPU-0",
    ),
    "WorkerAllocationFailed": (
        "tf_system_metrics",
        [{"total_allocation_fail_cnt": 3}, {"total_allocation_fail_cnt": 5}],
        "allocation",
    ),
    "GPUVRAMFull": ("tf_gpu_usage", [{"memory_percentage": 98.5}] * 2, "n1-GPU-0"),
    "GPUTFlopsFull": ("tf_gpu_usage", [{"compute_percentage": 99.0}] * 2, "n1-GPU-0"),
    "GPUTemperatureHigh": ("tf_gpu_usage", [{"temperature": 93.0}] * 2, "n1-GPU-0"),
    "NodeTFlopsAllocationCritical": ("tf_node_metrics", [TFLOPS_FULL] * 2, "n1"),
    "NodeTFlopsAllocationWarning": ("tf_node_metrics", [{"allocated_tflops_percent": 92.0}], "n1"),
    "NodeVRAMAllocationCritical": ("tf_node_metrics", [VRAM_FULL] * 2, "n1"),
    "NodeVRAMAllocationWarning": ("tf_node_metrics", [{"allocated_vram_percent": 92.0}], "n1"),
    "PoolTFlopsAllocationCritical": ("tf_node_metrics", [TFLOPS_FULL] * 2, "p"),
    "PoolTFlopsAllocationWarning": ("tf_node_metrics", [{"allocated_tflops_percent": 92.0}], "p"),
    "PoolVRAMAllocationCritical": ("tf_node_metrics", [VRAM_FULL] * 2, "p"),
    "PoolVRAMAllocationWarning": ("tf_node_metrics", [{"allocated_vram_percent": 92.0}], "p"),
    "EmptyGPU": (
        "tf_node_metrics",
        [{"allocated_tflops": 0.0, "allocated_vram_bytes": 0}] * 2,
        "n1",
    ),
    "IdleGPU": (
        "tf_gpu_usage",
        [{"compute_percentage": 0.2, "memory_percentage": 1.0}] * 2,
        "n1-GPU-0",
    ),
    "PoolCapacityCapped": (
        "tf_pool_metrics",
        [{"capacity_capped": 1, "capped_by": CAP}] * 2,
        "p",
    ),
    "PoolBudgetExceeded": (
        "tf_pool_metrics",
        [{"cost_per_hour": 4.5}, {"cost_per_hour": 4.0}],
        "p",
    ),
}
# Samples that must not trigger the rule (calm values unless listed), e.g. just below a limit.
NEAR_MISSES: dict[str, list[dict[str, FieldValue]]] = {
    "GPUVRAMFull": [{"memory_percentage": 97.0}, {"memory_percentage": 96.0}],
    "GPUTemperatureHigh": [{"temperature": 95.0}, {"temperature": 80.0}],  # average 87.5
    "NodeTFlopsAllocationCritical": [{"allocated_tflops_percent": 92.0}],  # only a warning
    "PoolVRAMAllocationCritical": [{"allocated_vram_percent": 92.0}],
    "IdleGPU": [{"compute_percentage": 0.2, "memory_percentage": 40.0}],
    # capped for only part of the window: it could grow again
    "PoolCapacityCapped": [{"capacity_capped": 1, "capped_by": CAP}, {"capacity_capped": 0}],
    "PoolBudgetExceeded": [{"cost_per_hour": 4.5}, {"cost_per_hour": 3.5}],  # 96 a day
}


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[EmbeddedSink]:
    embedded = EmbeddedSink(tmp_path / "metrics.db", ttl="0")
    yield embedded
    embedded.close()


def by_name() -> dict[str, AlertRule]:
    return {rule.name: rule for rule in builtin_rules()}


def write_samples(
    sink: EmbeddedSink, table: str, samples: list[dict[str, FieldValue]], interval_ns: int
) -> None:
    tags, calm = TABLES[table]
    # spread inside the window that ends at NOW, plus one calm sample just before it
    # (outside the window, so it must not count)
    step = interval_ns // (len(samples) + 1)
    points = [Point(table, tags, calm, NOW - interval_ns - SECOND_NS)]
    points += [
        Point(table, tags, calm | sample, NOW - interval_ns + step * (index + 1))
        for index, sample in enumerate(samples)
    ]
    for other, (other_tags, other_calm) in TABLES.items():
        if other != table:  # every table exists, as on a running cluster
            points.append(Point(other, other_tags, other_calm, NOW - SECOND_NS))
    sink.write(points)


def evaluate(sink: EmbeddedSink, rule: AlertRule) -> list[dict[str, Any]]:
    evaluator = Evaluator(sink)
    evaluator.set_rules([rule.model_copy(update={"consecutive_count": 1})])
    alerts = evaluator.tick(NOW)
    assert evaluator.health()[rule.name].healthy, evaluator.health()[rule.name].error
    return [{"labels": a.labels, "annotations": a.annotations} for a in alerts]


def interval_ns(rule: AlertRule) -> int:
    return int(parse_duration(rule.evaluation_interval).total_seconds()) * SECOND_NS


def test_every_upstream_rule_and_watchdog_is_built_in() -> None:
    assert sorted(by_name()) == sorted([*TRIGGERS, WATCHDOG])


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_rule_fires_on_data_that_triggers_it(sink: EmbeddedSink, name: str) -> None:
    rule = by_name()[name]
    table, samples, instance = TRIGGERS[name]
    write_samples(sink, table, samples, interval_ns(rule))
    [alert] = evaluate(sink, rule)
    assert alert["labels"]["instance"] == instance
    assert alert["labels"]["severity"] == rule.severity
    for text in alert["annotations"].values():
        assert "<no value>" not in text
    assert alert["annotations"]["runbook_url"].endswith(name.lower())


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_rule_stays_quiet_on_calm_data(sink: EmbeddedSink, name: str) -> None:
    rule = by_name()[name]
    table = TRIGGERS[name][0]
    write_samples(sink, table, NEAR_MISSES.get(name, [{}, {}]), interval_ns(rule))
    assert evaluate(sink, rule) == []


def test_watchdog_always_fires_even_without_metrics(sink: EmbeddedSink) -> None:
    [alert] = evaluate(sink, by_name()[WATCHDOG])
    assert alert["labels"] == {
        "alertname": "WatchDog",
        "severity": "none",
        "job": "tensor-fusion",
        "instance": "tensor-fusion",
    }


def test_default_dynamic_config_carries_the_builtins() -> None:
    config = default_dynamic_config()
    assert [rule.name for rule in config.alert_rules] == [rule.name for rule in builtin_rules()]
    assert config.metrics_ttl == "30d"


def test_the_capped_alert_names_the_cap(sink: EmbeddedSink) -> None:
    rule = by_name()["PoolCapacityCapped"]
    write_samples(sink, "tf_pool_metrics", TRIGGERS[rule.name][1], interval_ns(rule))
    [alert] = evaluate(sink, rule)
    assert alert["annotations"]["description"] == f"Pool p cannot add the nodes it needs: {CAP}"


def test_a_pool_without_a_budget_is_never_over_it(sink: EmbeddedSink) -> None:
    rule = by_name()["PoolBudgetExceeded"]
    samples: list[dict[str, FieldValue]] = [{"cost_per_hour": 50.0, "budget_per_day": 0.0}] * 2
    write_samples(sink, "tf_pool_metrics", samples, interval_ns(rule))  # no budget set
    assert evaluate(sink, rule) == []


def pool_rows(pool: dict[str, Any]) -> Point:
    """The tf_pool_metrics row the leader records for pool-a, whose object is `pool`."""
    points = AllocationRecorder(Source(cluster()), pools=lambda: [pool]).points(NOW - SECOND_NS)
    return next(p for p in points if p.measurement == POOL_METRICS and p.tags["pool"] == "pool-a")


def test_pool_rows_carry_what_provisioning_wrote_into_the_pool(sink: EmbeddedSink) -> None:
    pool = {
        "metadata": {"name": "pool-a"},
        "spec": {"nodeManagerConfig": {"nodeProvisioner": {"budget": {"budgetPerDay": "20"}}}},
        "status": {
            "costPerHour": "9.2032",
            "conditions": [
                {
                    "type": "CapacityCapped",
                    "status": "True",
                    "reason": "MaxResources",
                    "message": CAP,
                }
            ],
        },
    }
    row = pool_rows(pool)
    assert row.fields["cost_per_hour"] == 9.2032
    assert row.fields["budget_per_day"] == 20.0
    assert (row.fields["capacity_capped"], row.fields["capped_by"]) == (1, CAP)
    sink.write([row])
    budget = by_name()["PoolBudgetExceeded"]
    [alert] = evaluate(sink, budget)  # 220.8 a day
    assert alert["labels"]["instance"] == "pool-a"


def test_pool_rows_of_a_pool_nothing_was_provisioned_for() -> None:
    nothing = {"capacity_capped": 0, "capped_by": "", "cost_per_hour": 0.0, "budget_per_day": 0.0}
    row = pool_rows({"metadata": {"name": "pool-a"}, "status": {"costPerHour": "n/a"}})
    assert {k: row.fields[k] for k in nothing} == nothing
    # Without the pool objects the columns are still there, so the rules run.
    points = AllocationRecorder(Source(cluster())).points(NOW)
    row = next(p for p in points if p.measurement == POOL_METRICS)
    assert {k: row.fields[k] for k in nothing} == nothing
