"""The best-node search finds the node (and GPUs) a full scan ranks first, however the
fleet, the request and the other plugins' per-node totals fall, and after any nodes move."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion import _native
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest, fit_gpus
from tensorfusion.scheduler.gpu_search import NodeSummaries, search_gpus
from tests.native.test_gpu_fit import fleets, request, small_fleet


def _full_scan_best(
    arrays: GpuArrays,
    mask: np.ndarray,
    workers: np.ndarray,
    req: GpuFitRequest,
    *,
    bonus: np.ndarray,
    weight: int,
) -> tuple[int, tuple[int, ...]]:
    result = fit_gpus(arrays, mask, workers, req)
    feasible = result.node_reason == 0
    if not feasible.any():
        return -1, ()
    total = np.where(feasible, weight * result.node_score.astype(np.int64) + bonus, -(2**62))
    best = int(np.argmax(total))
    return best, tuple(result.node_gpus[best].tolist())


@settings(deadline=None, max_examples=30)
@given(case=fleets(max_nodes=12), data=st.data())
def test_search_finds_the_full_scans_best_node(
    case: tuple[GpuArrays, np.ndarray, np.ndarray, GpuFitRequest], data: st.DataObject
) -> None:
    arrays, mask, workers, req = case
    if data.draw(st.booleans()):  # compute percent, whose whole-node bound is the loosest
        req = replace(req, percent_request_ppm=data.draw(st.integers(0, 1_000_000)))
    node_count = len(mask)
    bonus = np.array(
        data.draw(st.lists(st.integers(0, 300), min_size=node_count, max_size=node_count)),
        dtype=np.int64,
    )
    weight = data.draw(st.sampled_from([0, 1, 3, 100]))
    versions = np.zeros(node_count, dtype=np.int64)
    summaries = NodeSummaries()
    summaries.refresh(arrays, versions, 0, req)
    want = _full_scan_best(arrays, mask, workers, req, bonus=bonus, weight=weight)
    assert (
        search_gpus(arrays, summaries, mask, workers, req, bonus=bonus, gpu_weight=weight) == want
    )
    # Some nodes move on: only theirs are summarised again.
    for node in sorted(data.draw(st.sets(st.integers(0, node_count - 1), max_size=4))):
        for gpu in np.flatnonzero(arrays.node == node).tolist():
            for column in ("tflops_requested", "vram_requested"):
                values = getattr(arrays, column)
                values[gpu] = data.draw(st.integers(0, max(2 * int(values[gpu]), 64)))
        versions[node] += 1
    summaries.refresh(arrays, versions, 0, req)
    want = _full_scan_best(arrays, mask, workers, req, bonus=bonus, weight=weight)
    assert (
        search_gpus(arrays, summaries, mask, workers, req, bonus=bonus, gpu_weight=weight) == want
    )


def test_summaries_follow_the_request_weights() -> None:
    arrays, mask, workers = small_fleet()
    arrays.vram_requested[0] = 5
    summaries = NodeSummaries()
    versions = np.zeros(len(mask), dtype=np.int64)
    bonus = np.zeros(len(mask), dtype=np.int64)
    for weights in ((1.0, 0.0), (0.0, 1.0), (1.0, 0.0)):
        req = request(vram_weight=weights[0], tflops_weight=weights[1])
        summaries.refresh(arrays, versions, 0, req)
        want = _full_scan_best(arrays, mask, workers, req, bonus=bonus, weight=1)
        assert search_gpus(arrays, summaries, mask, workers, req, bonus=bonus, gpu_weight=1) == want


def test_bad_layout_and_weight_name_the_argument() -> None:
    arrays, mask, workers = small_fleet()
    summaries = NodeSummaries()
    summaries.refresh(arrays, np.zeros(len(mask), dtype=np.int64), 0, request())
    bonus = np.zeros(len(mask), dtype=np.int64)
    with pytest.raises(ValueError, match=r"^gpu_weight: must be >= 0"):
        search_gpus(arrays, summaries, mask, workers, request(), bonus=bonus, gpu_weight=-1)
    with pytest.raises(ValueError, match=r"^bonus: length 1"):
        search_gpus(arrays, summaries, mask, workers, request(), bonus=bonus[:1], gpu_weight=1)
    summaries.node_start = np.array([0, 3, 2], dtype=np.int64)
    with pytest.raises(ValueError, match=r"^node_start: must run from 0"):
        search_gpus(arrays, summaries, mask, workers, request(), bonus=bonus, gpu_weight=1)


def test_a_gpu_on_an_unknown_node_is_named() -> None:
    arrays, mask, workers = small_fleet()
    summaries = NodeSummaries()
    versions = np.zeros(len(mask), dtype=np.int64)
    summaries.refresh(arrays, versions, 0, request())
    arrays.node[2] = len(mask)
    bonus = np.zeros(len(mask), dtype=np.int64)
    summaries.node_start[-1] = 2  # the layout of the GPUs as they now are
    with pytest.raises(ValueError, match=r"^node: value 2 at index 2 is not an index"):
        search_gpus(arrays, summaries, mask, workers, request(), bonus=bonus, gpu_weight=1)
    with pytest.raises(ValueError, match=r"^node: value 2 at index 2 is not an index"):
        summaries.refresh(arrays, versions, 1, request())


def test_negative_amount_is_reported_by_field() -> None:
    arrays, mask, _ = small_fleet()
    arrays.vram_requested[2] = -1
    summaries = NodeSummaries()
    with pytest.raises(ValueError, match=r"^vram_requested: value -1 at index 2"):
        summaries.refresh(arrays, np.zeros(len(mask), dtype=np.int64), 0, request())


def test_summary_width_is_exposed() -> None:
    assert _native.NODE_SUMMARY_WIDTH > 0
