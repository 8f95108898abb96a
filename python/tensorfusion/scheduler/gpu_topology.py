"""GPU interconnect groups: which GPUs of a node form an NVLink clique (every pair linked),
so that a multi-GPU pod can be given GPUs that talk over NVLink rather than PCIe."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from tensorfusion.scheduler.allocation import GpuRecord


def nvlink_cliques(records: Sequence[GpuRecord]) -> NDArray[np.int32]:
    """A group id per GPU (in `records` order): GPUs of one connected NVLink component that
    is a full clique share an id; GPUs without links, or in a component that is not a
    clique (a hybrid cube-mesh), get -1. Links count in both directions even when only one
    side lists the other."""
    position = {record.name: i for i, record in enumerate(records)}
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links: list[set[int]] = [set() for _ in records]
    for i, record in enumerate(records):
        for peer in record.nvlink_peers:
            j = position.get(peer)
            if j is None or j == i or records[j].node != record.node:
                continue
            links[i].add(j)
            links[j].add(i)
            parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for i in range(len(records)):
        if links[i]:
            members.setdefault(root(i), []).append(i)
    groups = np.full(len(records), -1, dtype=np.int32)
    for group_id, component in enumerate(members.values()):
        size = len(component)
        if all(len(links[i]) == size - 1 for i in component):
            groups[component] = group_id
    return groups


def numa_nodes(records: Sequence[GpuRecord]) -> NDArray[np.int32]:
    """The NUMA node per GPU (-1 when unknown)."""
    return np.array([-1 if r.numa_node is None else r.numa_node for r in records], dtype=np.int32)
