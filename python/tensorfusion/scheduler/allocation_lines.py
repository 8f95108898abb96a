"""The leader's allocation tables as runs of rows in columns, built from the allocator's
columns: the rows `AllocationRecorder.points(...)` holds, without a `Point` per row.

The amounts are summed and divided by numpy; what is left to Python is gathering each row's
names. Rows go out in runs of at most `RUN` with one tag set each (`Rows`, checked over whole
columns), so the pass never holds the interpreter for long at a time: the API's requests
(which share it) wait for one run's names at most, not for the pass. The embedded sink
stores the runs' columns as they are; a remote sink formats them natively as line protocol,
`encode(points)` byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tensorfusion.metrics.point import Point
from tensorfusion.metrics.row_values import workload_of
from tensorfusion.metrics.rows import Rows, rows_of
from tensorfusion.metrics.sink import Lines
from tensorfusion.scheduler.allocation import Allocation, GpuRecord
from tensorfusion.scheduler.allocation_recorder import (
    GPU_ALLOCATION,
    GPU_METRICS,
    NODE_METRICS,
    TABLES,
    WORKER_RESOURCES,
    AllocationFigures,
    AllocationRecorder,
    model_index,
    phase_of,
    system_row,
)
from tensorfusion.scheduler.inventory import InventoryView, pool_inventory, present_groups

RUN = 1024
"""Rows per formatting call: their names take well under a millisecond to gather."""

Amounts = dict[str, NDArray[np.int64]]
_TFLOPS = ("tflops_capacity", "tflops_virtual", "tflops_requested")
_VRAM = ("vram_capacity", "vram_virtual", "vram_requested")


def _chunks(count: int) -> Iterator[slice]:
    return (slice(start, min(start + RUN, count)) for start in range(0, count, RUN))


def _percent(part: NDArray[np.float64], whole: NDArray[np.float64]) -> NDArray[np.float64]:
    """`row_values.percent` over arrays: the same operations on the same doubles."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part * 100.0 / whole, 0.0)


def _allocated(sums: Amounts) -> dict[str, NDArray[Any]]:
    """`allocation_recorder._allocated` over arrays of summed amounts."""
    tflops = {name: sums[name] / 1000 for name in _TFLOPS}
    vram = {name: sums[name].astype(np.float64) for name in _VRAM}
    return {
        "allocated_tflops": tflops["tflops_requested"],
        "allocated_tflops_percent": _percent(tflops["tflops_requested"], tflops["tflops_capacity"]),
        "allocated_tflops_percent_virtual": _percent(
            tflops["tflops_requested"], tflops["tflops_virtual"]
        ),
        "allocated_vram_bytes": vram["vram_requested"],
        "allocated_vram_percent": _percent(vram["vram_requested"], vram["vram_capacity"]),
        "allocated_vram_percent_virtual": _percent(vram["vram_requested"], vram["vram_virtual"]),
    }


Tags = list[tuple[str, Sequence[str | None]]]


def _runs(
    measurement: str,
    tags: Tags,
    fields: dict[str, NDArray[Any]],
    now_ns: int,
) -> Iterator[Rows]:
    """The rows of one run, cut where the set of known tags changes (an unknown tag
    is left out of its line, as `known_tags` leaves it out of its point)."""
    keys = [key for key, _ in tags]
    cells = [values for _, values in tags]
    rows = len(cells[0])
    if all(map(all, cells)):  # the common case: every tag known on every row
        known = [(True,) * len(cells)] * rows
    else:
        known = list(zip(*(map(bool, column) for column in cells), strict=True))
    start = 0
    while start < rows:
        end = start + 1
        while end < rows and known[end] == known[start]:
            end += 1
        tag_columns = {
            key: column[start:end]
            for key, column, wanted in zip(keys, cells, known[start], strict=True)
            if wanted
        }
        yield Rows.of(
            measurement,
            tag_columns,  # type: ignore[arg-type]  # only known (str) tags are kept
            {key: values[start:end] for key, values in fields.items()},
            np.full(end - start, now_ns, dtype=np.int64),
        )
        start = end


@dataclass(frozen=True)
class _Nodes:
    """Present GPUs grouped by node name (the node inventory's groups), names in order."""

    names: list[str]
    firsts: list[int]
    """Each node's first GPU (in the allocator's order): it names the node and its pool."""
    sums: Amounts
    counts: NDArray[np.int64]

    @classmethod
    def of(cls, view: InventoryView) -> _Nodes:
        order, starts = present_groups(view, view.node_ids)
        firsts = order[starts]
        names = _names(view.records, firsts, "node")
        by_name = _name_order(names)
        return cls(
            names=[names[i] for i in by_name.tolist()],
            firsts=firsts[by_name].tolist(),
            sums={
                name: np.add.reduceat(view.columns[name][order], starts)[by_name]
                if len(starts)
                else view.columns[name][:0]
                for name in (*_TFLOPS, *_VRAM)
            },
            counts=np.diff(np.r_[starts, len(order)])[by_name].astype(np.int64),
        )


def _names(records: list[GpuRecord], indices: NDArray[np.intp], attribute: str) -> list[Any]:
    """`attribute` of the records at `indices`, gathered a run at a time."""
    names: list[Any] = []
    for rows in _chunks(len(indices)):
        names += [getattr(records[i], attribute) for i in indices[rows].tolist()]
    return names


def _name_order(names: list[str]) -> NDArray[np.intp]:
    """The order that sorts `names` (stable, as `sorted`): converted a run at a time, sorted
    by numpy without the interpreter."""
    parts = [np.array(names[rows], dtype=np.str_) for rows in _chunks(len(names))]
    keys = np.concatenate(parts) if parts else np.array([], dtype=np.str_)
    return np.argsort(keys, kind="stable")


def _node_lines(figures: AllocationFigures, nodes: _Nodes, now_ns: int) -> Iterator[Rows]:
    fields = {**_allocated(nodes.sums), "gpu_count": nodes.counts}
    for rows in _chunks(len(nodes.names)):
        names = nodes.names[rows]
        tags: Tags = [
            ("node", names),
            ("pool", [figures.view.records[i].pool for i in nodes.firsts[rows]]),
            ("phase", _phases(figures.gpu_nodes, names)),
        ]
        yield from _runs(NODE_METRICS, tags, _rows(fields, rows), now_ns)


def _phases(objects: Mapping[str, Mapping[str, Any]], names: list[str]) -> list[str | None]:
    """`phase_of` each name, with the common case (plain dicts, as the store reads them)
    inlined: a call per GPU would be most of a run's time."""
    phases: list[str | None] = []
    for name in names:
        found = objects.get(name)
        status = found.get("status") if type(found) is dict else None
        if type(status) is not dict:
            phases.append(phase_of(objects, name))
            continue
        phase = status.get("phase")
        phases.append(phase if isinstance(phase, str) else None)
    return phases


def _rows(fields: dict[str, NDArray[Any]], rows: slice) -> dict[str, NDArray[Any]]:
    return {key: values[rows] for key, values in fields.items()}


def _gpu_lines(figures: AllocationFigures, now_ns: int) -> Iterator[Rows]:
    view = figures.view
    records = view.records
    present = np.flatnonzero(view.present)
    order = present[_name_order(_names(records, present, "name"))]
    columns = {name: view.columns[name][order] for name in (*_TFLOPS, *_VRAM)}
    capacity, allocated = columns["tflops_capacity"] / 1000, columns["tflops_requested"] / 1000
    vram_capacity, vram_allocated = columns["vram_capacity"], columns["vram_requested"]
    fields = {
        "capacity_tflops": capacity,
        "available_tflops": capacity - allocated,
        "allocated_tflops": allocated,
        "allocated_tflops_percent": _percent(allocated, capacity),
        "capacity_vram_bytes": vram_capacity.astype(np.float64),
        "available_vram_bytes": (vram_capacity - vram_allocated).astype(np.float64),
        "allocated_vram_bytes": vram_allocated.astype(np.float64),
        "allocated_vram_percent": _percent(
            vram_allocated.astype(np.float64), vram_capacity.astype(np.float64)
        ),
    }
    for rows in _chunks(len(order)):
        run = [records[i] for i in order[rows].tolist()]
        tags: Tags = [
            ("gpu", [r.name for r in run]),
            ("uuid", [r.uuid for r in run]),
            ("node", [r.node for r in run]),
            ("pool", [r.pool for r in run]),
            ("gpu_model", [r.model for r in run]),
            ("phase", _phases(figures.gpu_objects, [r.name for r in run])),
        ]
        yield from _runs(GPU_METRICS, tags, _rows(fields, rows), now_ns)


def _means(values: list[int], starts: NDArray[np.intp], counts: NDArray[np.int64]) -> Any:
    """Each allocation's mean share (`sum / len`, the same correctly rounded division)."""
    return np.add.reduceat(np.array(values, dtype=np.int64), starts) / counts


def _first_gpus(view: InventoryView) -> list[GpuRecord]:
    """Each allocation's first GPU: it names the worker's pool and node."""
    records, index_of, allocations = view.records, view.index_of, view.allocations
    firsts: list[GpuRecord] = []
    for rows in _chunks(len(allocations)):
        firsts += [records[index_of[a.gpus[0]]] for a in allocations[rows]]
    return firsts


def _worker_lines(
    figures: AllocationFigures, firsts: list[GpuRecord], now_ns: int
) -> Iterator[Rows]:
    allocations, bound = figures.view.allocations, figures.bound
    for rows in _chunks(len(allocations)):
        run = allocations[rows]
        counts = np.array([len(a.shares) for a in run], dtype=np.int64)
        starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.intp)
        shares = [share for a in run for share in a.shares]
        held = [bound.get(a.uid) for a in run]
        tags: Tags = [
            ("namespace", [a.namespace for a in run]),
            ("pool", [record.pool for record in firsts[rows]]),
            ("qos", [a.qos for a in run]),
            ("worker", [a.name for a in run]),
            (
                "workload",
                [
                    workload_of(a.name, pod[1].labels if pod is not None else {})
                    for a, pod in zip(run, held, strict=True)
                ],
            ),
        ]
        fields = {
            "gpu_count": np.array([len(a.gpus) for a in run], dtype=np.int64),
            "tflops_request": _means([s.tflops_request for s in shares], starts, counts) / 1000,
            "tflops_limit": _means([s.tflops_limit for s in shares], starts, counts) / 1000,
            "vram_bytes_request": _means([s.vram_request for s in shares], starts, counts),
            "vram_bytes_limit": _means([s.vram_limit for s in shares], starts, counts),
        }
        yield from _runs(WORKER_RESOURCES, tags, fields, now_ns)


def _model_indices(view: InventoryView, allocation: Allocation) -> str:
    records, index_of = view.records, view.index_of
    return ",".join(filter(None, (model_index(records[index_of[g]]) for g in allocation.gpus)))


def _allocation_lines(
    figures: AllocationFigures, firsts: list[GpuRecord], now_ns: int
) -> Iterator[Rows]:
    view = figures.view
    for rows in _chunks(len(view.allocations)):
        run = view.allocations[rows]
        first = firsts[rows]
        tags: Tags = [
            ("pod", [a.name for a in run]),
            ("namespace", [a.namespace for a in run]),
            ("pod_uuid", [a.uid for a in run]),
            ("node", [record.node for record in first]),
            (
                "gpu_model_index",
                [
                    # One GPU (the common case): its own `model:index`, no join needed.
                    model_index(record) if len(a.gpus) == 1 else _model_indices(view, a)
                    for a, record in zip(run, first, strict=True)
                ],
            ),
            ("gpu_name", [",".join(a.gpus) for a in run]),
        ]
        fields = {"gpu_count": np.array([len(a.gpus) for a in run], dtype=np.int64)}
        yield from _runs(GPU_ALLOCATION, tags, fields, now_ns)


def allocation_rows(
    recorder: AllocationRecorder, figures: AllocationFigures, now_ns: int
) -> Iterator[Rows]:
    """The tables at `now_ns` as runs of rows, in the order `points` gives the rows: encoded
    and joined, they are `encode(recorder.points(now_ns, figures))` byte for byte."""
    nodes = _Nodes.of(figures.view)
    yield from _node_lines(figures, nodes, now_ns)
    pools = recorder.pool_rows(pool_inventory(figures.view))
    yield from rows_of([Point(table, tags, fields, now_ns) for table, tags, fields in pools])
    yield from _gpu_lines(figures, now_ns)
    firsts = _first_gpus(figures.view)
    yield from _worker_lines(figures, firsts, now_ns)
    yield from _allocation_lines(figures, firsts, now_ns)
    workers, count = len(figures.view.allocations), len(nodes.names)
    table, tags, fields = system_row(figures.totals, workers=workers, nodes=count)
    yield from rows_of([Point(table, tags, fields, now_ns)])


def allocation_batches(
    recorder: AllocationRecorder, figures: AllocationFigures, now_ns: int
) -> Iterator[Lines]:
    """`allocation_rows` as batches a sink takes, a run each, with the tables' schemas."""
    for run in allocation_rows(recorder, figures, now_ns):
        yield Lines((run,), TABLES)
