"""What the recorders share when they turn cluster facts into table rows: which workload a
worker belongs to, tags without unknown values, and percentages that survive a zero total."""

from __future__ import annotations

from collections.abc import Mapping

from tensorfusion.api.annotations import PREFIX

WORKLOAD_LABEL = PREFIX + "workload"
"""The pod label that names a worker's workload (the key TensorFusion's own workloads set)."""


def workload_of(pod_name: str, labels: Mapping[str, str]) -> str:
    """The worker's workload: its workload label, else the worker itself (a pod started on
    its own is a workload of one)."""
    return labels.get(WORKLOAD_LABEL) or pod_name


def known_tags(tags: Mapping[str, str | None]) -> dict[str, str]:
    """The tags whose value is known: a missing tag reads back as NULL, while an empty one
    cannot be written at all."""
    return {key: value for key, value in tags.items() if value}


def percent(part: float, whole: float) -> float:
    """`part` as a percentage of `whole`; 0 when there is no whole to be a share of."""
    return part * 100.0 / whole if whole > 0 else 0.0
