"""The alert rules that ship by default: upstream's list, rewritten for our tables and for
SQL that runs unchanged on both the embedded sink (SQLite) and GreptimeDB, plus the node
provisioning rules (a pool held at maxResources, a pool over its daily budget) and WatchDog.

Counters (`*_cnt`) are cumulative, so "increased" is max - min within the window. Gauges
use the window's average, so one noisy sample does not count as a hit; `consecutiveCount`
then asks for the condition to hold over several windows.
"""

from __future__ import annotations

from typing import Any, Final

from tensorfusion.api.dynamic_config import AlertRule, DynamicConfig

RUNBOOK_BASE: Final = "https://tensor-fusion.ai/guide/troubleshooting/alerts#"
WATCHDOG: Final = "WatchDog"

_WORKER_KEYS: Final = "workload, worker, namespace, pool, node, uuid"
_GPU_KEYS: Final = "node, pool, uuid"


def _rule(
    name: str,
    query: str,
    *,
    threshold: float,
    interval: str,
    consecutive: int,
    severity: str,
    summary: str,
    description: str,
    instance: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "query": query,
        "threshold": threshold,
        "evaluationInterval": interval,
        "consecutiveCount": consecutive,
        "severity": severity,
        "summary": summary,
        "description": description,
        "alertTargetInstance": instance,
        "runbookURL": RUNBOOK_BASE + name.lower(),
    }


def _counter_increase(
    name: str, column: str, interval: str, consecutive: int, what: str
) -> dict[str, Any]:
    return _rule(
        name,
        f"SELECT {_WORKER_KEYS}, MAX({column}) - MIN({column}) AS increase "
        f"FROM tf_worker_usage WHERE {{{{ .Conditions }}}} GROUP BY {_WORKER_KEYS} "
        f"HAVING MAX({column}) - MIN({column}) > {{{{ .Threshold }}}}",
        threshold=0,
        interval=interval,
        consecutive=consecutive,
        severity="P1",
        summary=f"Worker {what}",
        description=f"Worker {{{{ .worker }}}} of workload {{{{ .workload }}}} in namespace "
        f"{{{{ .namespace }}}} on node {{{{ .node }}}} GPU {{{{ .uuid }}}}: {what} "
        "{{ .increase }} times in the last window",
        instance="{{ .worker }}-{{ .uuid }}",
    )


def _gpu_above(
    name: str, column: str, threshold: float, consecutive: int, what: str
) -> dict[str, Any]:
    return _rule(
        name,
        f"SELECT {_GPU_KEYS}, AVG({column}) AS value FROM tf_gpu_usage "
        f"WHERE {{{{ .Conditions }}}} GROUP BY {_GPU_KEYS} "
        f"HAVING AVG({column}) > {{{{ .Threshold }}}}",
        threshold=threshold,
        interval="30s",
        consecutive=consecutive,
        severity="P1",
        summary=f"GPU {what}",
        description=f"GPU {{{{ .uuid }}}} on node {{{{ .node }}}} (pool {{{{ .pool }}}}): {what}, "
        "{{ .value }} > {{ .Threshold }}",
        instance="{{ .node }}-{{ .uuid }}",
    )


def _allocation(scope: str, resource: str, level: str) -> dict[str, Any]:
    """Free share of allocatable TFLOPS or VRAM below 5% (Critical, P0) or 10% (Warning, P1),
    per node or averaged over a pool's nodes."""
    column = f"allocated_{'tflops' if resource == 'TFlops' else 'vram'}_percent"
    keys = "node, pool" if scope == "Node" else "pool"
    critical = level == "Critical"
    return _rule(
        f"{scope}{resource}Allocation{level}",
        f"SELECT {keys}, 100 - AVG({column}) AS free_percent FROM tf_node_metrics "
        f"WHERE {{{{ .Conditions }}}} GROUP BY {keys} "
        f"HAVING 100 - AVG({column}) < {{{{ .Threshold }}}}",
        threshold=5 if critical else 10,
        interval="1m",
        consecutive=2,
        severity="P0" if critical else "P1",
        summary=f"{scope} {resource} allocation {level.lower()}",
        description=f"{scope} {{{{ .{scope.lower()} }}}}: only {{{{ .free_percent }}}}% of its "
        f"{resource} is free (below {{ .Threshold }}%)",
        instance=f"{{{{ .{scope.lower()} }}}}",
    )


def _builtin_rules() -> list[dict[str, Any]]:
    return [
        _counter_increase(
            "WorkerTFlopsThrottled", "compute_throttled_cnt", "15s", 3, "TFLOPS throttled"
        ),
        _counter_increase(
            "WorkerVRAMSwitchCountIncreasing", "vram_resumed_cnt", "2m", 1, "VRAM resumed"
        ),
        _rule(
            "WorkerAllocationFailed",
            "SELECT MAX(total_allocation_fail_cnt) - MIN(total_allocation_fail_cnt) AS failed "
            "FROM tf_system_metrics WHERE {{ .Conditions }} "
            "HAVING MAX(total_allocation_fail_cnt) - MIN(total_allocation_fail_cnt) "
            "> {{ .Threshold }}",
            threshold=0,
            interval="30s",
            consecutive=1,
            severity="P1",
            summary="GPU allocation failed",
            description="{{ .failed }} GPU allocations failed in the last window",
            instance="allocation",
        ),
        _gpu_above("GPUVRAMFull", "memory_percentage", 97, 2, "VRAM almost full"),
        _gpu_above("GPUTFlopsFull", "compute_percentage", 97, 4, "compute almost saturated"),
        _gpu_above("GPUTemperatureHigh", "temperature", 90, 3, "temperature high"),
        *(
            _allocation(scope, resource, level)
            for scope in ("Node", "Pool")
            for resource in ("TFlops", "VRAM")
            for level in ("Critical", "Warning")
        ),
        _rule(
            "EmptyGPU",
            "SELECT node, pool FROM tf_node_metrics WHERE {{ .Conditions }} GROUP BY node, pool "
            "HAVING MAX(gpu_count) > 0 AND MAX(allocated_tflops) <= {{ .Threshold }} "
            "AND MAX(allocated_vram_bytes) <= {{ .Threshold }}",
            threshold=0,
            interval="5m",
            consecutive=2,
            severity="P2",
            summary="GPU node without workers",
            description="Node {{ .node }} (pool {{ .pool }}) has GPUs but no workers on them",
            instance="{{ .node }}",
        ),
        _rule(
            "IdleGPU",
            f"SELECT {_GPU_KEYS}, AVG(compute_percentage) AS compute, "
            "AVG(memory_percentage) AS memory FROM tf_gpu_usage WHERE {{ .Conditions }} "
            f"GROUP BY {_GPU_KEYS} HAVING AVG(compute_percentage) < {{{{ .Threshold }}}} "
            "AND AVG(memory_percentage) < 5",
            threshold=1,
            interval="10m",
            consecutive=3,
            severity="P2",
            summary="GPU idle",
            description="GPU {{ .uuid }} on node {{ .node }}: compute {{ .compute }}% and VRAM "
            "{{ .memory }}%, idle",
            instance="{{ .node }}-{{ .uuid }}",
        ),
        # Provisioning, from the pool rows: a pool capped for a whole window, and a pool
        # whose provisioned nodes cost more per day than its budget allows (0: no budget).
        _rule(
            "PoolCapacityCapped",
            "SELECT pool, MAX(capped_by) AS cap FROM tf_pool_metrics WHERE {{ .Conditions }} "
            "GROUP BY pool HAVING MIN(capacity_capped) > {{ .Threshold }}",
            threshold=0,
            interval="5m",
            consecutive=1,
            severity="P1",
            summary="Pool capacity capped",
            description="Pool {{ .pool }} cannot add the nodes it needs: {{ .cap }}",
            instance="{{ .pool }}",
        ),
        _rule(
            "PoolBudgetExceeded",
            "SELECT pool, AVG(cost_per_hour) * 24 AS cost_per_day, "
            "MAX(budget_per_day) AS budget_per_day FROM tf_pool_metrics "
            "WHERE {{ .Conditions }} GROUP BY pool "
            "HAVING MAX(budget_per_day) > 0 "
            "AND AVG(cost_per_hour) * 24 - MAX(budget_per_day) > {{ .Threshold }}",
            threshold=0,
            interval="10m",
            consecutive=1,
            severity="P1",
            summary="Pool over its daily budget",
            description="Pool {{ .pool }}: its nodes cost {{ .cost_per_day }} per day at "
            "on-demand prices, over its budgetPerDay of {{ .budget_per_day }}",
            instance="{{ .pool }}",
        ),
        # Always fires: if it stops arriving, the alert pipeline itself is broken.
        _rule(
            WATCHDOG,
            "SELECT 'tensor-fusion' AS source",
            threshold=0,
            interval="30s",
            consecutive=1,
            severity="none",
            summary="Alerting pipeline is alive",
            description="Always firing: its absence means the alert pipeline is broken.",
            instance="{{ .source }}",
        ),
    ]


def builtin_rules() -> list[AlertRule]:
    return [AlertRule.model_validate(rule) for rule in _builtin_rules()]


def default_dynamic_config() -> DynamicConfig:
    """The dynamic config in force when none is given: default retention and the built-ins."""
    return DynamicConfig.model_validate({"alertRules": _builtin_rules()})
