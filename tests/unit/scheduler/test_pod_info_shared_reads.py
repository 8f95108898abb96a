"""PodInfo.from_dict reads the TensorFusion annotations once for pods that differ only in
values of their own (gpu-ids and the annotations the read ignores): each pod still gets
exactly what reading it alone gives, its own GPUs and, for bad annotations, its own problems
naming the key."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_REQUEST,
    DISABLE_FEATURES,
    ENABLED_LABEL,
    GPU_COUNT,
    GPU_IDS,
    GPU_INDICES,
    GPU_POOL,
    INJECT_CONTAINER,
    PREFIX,
    QOS,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
    WORKER_PIDS,
    read_workload_request,
)
from tensorfusion.scheduler import pod_info
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.scheduler.pod_info import PodInfo


def comparable(info: PodInfo) -> dict[str, Any]:
    """Every field of `info`; the workload also by its repr (quantities compare by value, so
    this keeps their text), and problems by key and message (exceptions compare by identity)."""
    fields = {field.name: getattr(info, field.name) for field in dataclasses.fields(PodInfo)}
    fields["workload"] = (info.workload, repr(info.workload))
    fields["workload_problems"] = [(p.key, p.message) for p in info.workload_problems]
    return fields


def read_alone(pod: dict[str, Any]) -> PodInfo:
    """The pod as from_dict reads it with nothing read before it."""
    pod_info._read_workload.cache_clear()
    return PodInfo.from_dict(pod)


def read_directly(pod: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
    """The workload read of the pod's whole label and annotations, nothing left out."""
    metadata = pod["metadata"]
    names = [container["name"] for container in pod["spec"]["containers"]]
    request, problems = read_workload_request(
        metadata.get("labels", {}), metadata["annotations"], names
    )
    return (request, repr(request)), [(p.key, p.message) for p in problems]


def read_in_turn(pods: list[dict[str, Any]]) -> list[PodInfo]:
    pod_info._read_workload.cache_clear()
    return [PodInfo.from_dict(pod) for pod in pods]


def check_each(pods: list[dict[str, Any]], infos: list[PodInfo]) -> None:
    for pod, info in zip(pods, infos, strict=True):
        fields = comparable(info)
        assert fields == comparable(read_alone(pod)), pod
        assert (fields["workload"], fields["workload_problems"]) == read_directly(pod), pod


def test_replicas_of_a_fleet_share_one_read_and_keep_their_own_gpus() -> None:
    pods = generate_fleet(40, 8, "H100", 0.6, seed=3).pods
    infos = read_in_turn(pods)
    kinds = {
        tuple(sorted((k, v) for k, v in pod["metadata"]["annotations"].items() if k != GPU_IDS))
        for pod in pods
    }
    assert pod_info._read_workload.cache_info().misses <= len(kinds) < len(pods)
    check_each(pods, infos)


def values(*good_and_bad: str) -> st.SearchStrategy[str]:
    return st.sampled_from(good_and_bad)


SHARED = st.fixed_dictionaries(
    {TFLOPS_REQUEST: values("10", "500m", "-1", "ten", "", " ")},
    optional={
        TFLOPS_LIMIT: values("20", "5", "0"),
        VRAM_REQUEST: values("1Gi", "1.5", "x"),
        VRAM_LIMIT: values("2Gi", "1Mi", "0"),
        COMPUTE_PERCENT_REQUEST: values("50", "0", "101", "1.5"),
        GPU_COUNT: values("1", "2", "0", "two"),
        GPU_POOL: values("pool-a", "Pool_A"),
        QOS: values("high", "urgent"),
        INJECT_CONTAINER: values("main", "side", "other", "main,,side"),
        DISABLE_FEATURES: values("gpu-limiter", " "),
    },
)
"""Annotations replicas of one controller share, each value good or bad."""
OWN = st.fixed_dictionaries(
    {},
    optional={
        GPU_IDS: values("gpu-1", "gpu-1,gpu-2", " gpu-3 , gpu-4 ", "", " ", "a,,b", ",a", "a,"),
        GPU_INDICES: values("0", "1,2", ""),
        WORKER_PIDS: values("12@34", "bad"),
        PREFIX + "not-a-key": values("x", ""),
    },
)
"""Annotations each pod holds a value of its own in."""


@settings(max_examples=200, deadline=None)
@given(
    SHARED,
    st.lists(OWN, min_size=1, max_size=4),
    st.sampled_from([None, "true", "false", "yes"]),
    st.sampled_from([("main",), ("main", "side")]),
)
def test_each_pod_reads_as_if_alone(
    shared: dict[str, str],
    owns: list[dict[str, str]],
    enabled: str | None,
    containers: tuple[str, ...],
) -> None:
    labels = {} if enabled is None else {ENABLED_LABEL: enabled}
    pods = [
        {
            "metadata": {
                "name": f"p-{number}",
                "labels": labels,
                "annotations": {**shared, **own},
            },
            "spec": {"containers": [{"name": name} for name in containers]},
        }
        for number, own in enumerate(owns)
    ]
    check_each(pods, read_in_turn(pods))
