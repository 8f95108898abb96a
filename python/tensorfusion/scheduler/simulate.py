"""simulate(pod): the whole pipeline on the current state, changing nothing, reported the way
`POST /api/simulate-schedule` and `tensor-fusion simulate` show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tensorfusion.api.annotations import GPU_IDS
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.api.yaml_loader import load_documents
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import Outcome, Verdict, kept_out, pre_enqueue, schedule_one
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import Profile

TOP_NODES = 5


def simulate(
    profile: Profile, cluster: ClusterState, pod: Mapping[str, Any], top: int = TOP_NODES
) -> dict[str, Any]:
    """Where the pod would go and why, as a JSON-ready report. The allocator and node
    table are exactly as before the call. A pod that PreEnqueue keeps out of the queue is
    reported as such, without a scheduling attempt, as the scheduler would treat it."""
    info = PodInfo.from_dict(pod)
    verdicts = pre_enqueue(profile, info)
    outcome = kept_out(cluster.view, info, verdicts)
    if outcome is None:
        outcome = schedule_one(profile, cluster.view, info, commit=False)
        outcome.pre_enqueue = verdicts
    return report(outcome, cluster, top)


def profile_for(profiles: Mapping[str, Profile], pod: Mapping[str, Any]) -> Profile:
    """The profile named by the pod's schedulerName (ours when it names none)."""
    name = (pod.get("spec") or {}).get("schedulerName") or SCHEDULER_NAME
    if name not in profiles:
        raise ConfigError(
            "spec.schedulerName", f"no profile named {name!r} (profiles: {', '.join(profiles)})"
        )
    return profiles[name]


def read_pod(source: str, text: str) -> dict[str, Any]:
    """The one Pod manifest (YAML or JSON) of a simulate request. Its TensorFusion
    annotations are judged by the scheduler, which reports bad ones as reasons."""
    documents, problem = load_documents(text)
    if problem is not None:
        raise ConfigError(source, str(problem))
    if len(documents) != 1:
        raise ConfigError(source, f"must hold exactly one Pod, found {len(documents)} documents")
    pod = documents[0].data
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        kind = pod.get("kind") if isinstance(pod, dict) else type(pod).__name__
        raise ConfigError(f"{source}: kind", f"must be Pod, got {kind!r}")
    if not isinstance(pod.get("metadata"), dict) or not isinstance(pod.get("spec"), dict):
        raise ConfigError(f"{source}: metadata", "a Pod needs metadata and spec mappings")
    return pod


def report(outcome: Outcome, cluster: ClusterState, top: int = TOP_NODES) -> dict[str, Any]:
    pod = outcome.pod
    gpu_ids = outcome.annotations.get(GPU_IDS)
    body: dict[str, Any] = {
        "pod": f"{pod.namespace}/{pod.name}",
        "schedulable": outcome.scheduled,
        "node": outcome.node,
        "gpus": gpu_ids.split(",") if gpu_ids else [],
        "preEnqueueStages": [_verdict(verdict) for verdict in outcome.pre_enqueue],
        "filterStages": [
            {
                "plugin": stage.plugin,
                "before": stage.before,
                "after": stage.after,
                "skipped": stage.skipped,
            }
            for stage in outcome.stages
        ],
        "permitStages": [_verdict(verdict) for verdict in outcome.permit],
        "topNodes": _top_nodes(outcome, cluster, top),
        "notes": list(outcome.state.notes),
    }
    if not outcome.scheduled:
        body["diagnosis"] = {
            "status": outcome.status.code.value,
            "unschedulablePlugins": [p for p in outcome.status.plugin.split(", ") if p],
            "reasons": outcome.diagnosis(),
            "message": outcome.summary(),
        }
    return body


def _verdict(verdict: Verdict) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "plugin": verdict.plugin,
        "status": verdict.status.code.value,
        "reasons": list(verdict.status.reasons),
    }
    if verdict.timeout_s is not None:
        entry["timeoutSeconds"] = verdict.timeout_s
    return entry


def _top_nodes(outcome: Outcome, cluster: ClusterState, top: int) -> list[dict[str, Any]]:
    if outcome.total is None or outcome.feasible is None:
        return []
    feasible = np.flatnonzero(outcome.feasible)
    # Highest total first, then lowest index: the order the pipeline picks in.
    order = feasible[np.lexsort((feasible, -outcome.total[feasible]))][:top]
    names = cluster.nodes.names
    return [
        {
            "node": names[int(node)],
            "total": int(outcome.total[node]),
            "plugins": {
                scores.plugin: {
                    "score": int(scores.normalized[node]),
                    "raw": int(scores.raw[node]),
                    "weight": scores.weight,
                }
                for scores in outcome.scores
            },
        }
        for node in order.tolist()
    ]
