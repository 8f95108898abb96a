"""Refitting only the nodes that changed gives exactly what a full scan gives."""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.scheduler.gpu_fit import (
    GpuArrays,
    GpuFitRequest,
    GpuFitResult,
    fit_gpus,
    refit_gpus,
)
from tests.native.test_gpu_fit import fleets, request, small_fleet


def _assert_same(got: GpuFitResult, want: GpuFitResult) -> None:
    for spec in fields(got):
        a, b = getattr(got, spec.name), getattr(want, spec.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype, spec.name
            assert np.array_equal(a, b), spec.name
        else:
            assert a == b, spec.name


# Twenty nodes of up to eight GPUs give every mix of changed and unchanged nodes; larger
# fleets mostly overrun hypothesis's buffer with the per-GPU redraws and add no cases.
@settings(deadline=None, max_examples=60)
@given(case=fleets(max_nodes=20), data=st.data())
def test_refit_of_the_changed_nodes_equals_a_full_fit(
    case: tuple[GpuArrays, np.ndarray, np.ndarray, GpuFitRequest], data: st.DataObject
) -> None:
    arrays, mask, workers, req = case
    before = fit_gpus(arrays, mask, workers, req)
    frozen = {
        name: array.copy() for name, array in vars(before).items() if isinstance(array, np.ndarray)
    }
    node_count = len(mask)
    changed = sorted(data.draw(st.sets(st.integers(0, node_count - 1), max_size=node_count)))
    for node in changed:
        gpus = np.flatnonzero(arrays.node == node)
        for gpu in gpus.tolist():
            for column in ("tflops_requested", "vram_requested", "tflops_limited", "vram_limited"):
                values = getattr(arrays, column)
                values[gpu] = data.draw(st.integers(0, min(max(int(values[gpu]) * 2, 1), 2**62)))
        mask[node] = data.draw(st.sampled_from([0, 1]))
        workers[node] = data.draw(st.integers(0, 4))
    refitted = refit_gpus(
        arrays,
        mask,
        workers,
        req,
        previous=before,
        changed=np.array(changed, dtype=np.int32),
    )
    _assert_same(refitted, fit_gpus(arrays, mask, workers, req))
    # The earlier result is left as it was: an earlier cycle may still read it.
    for name, array in frozen.items():
        assert np.array_equal(getattr(before, name), array), name


def test_refit_with_nothing_changed_is_the_same_answer() -> None:
    arrays, mask, workers = small_fleet()
    before = fit_gpus(arrays, mask, workers, request())
    again = refit_gpus(
        arrays, mask, workers, request(), previous=before, changed=np.array([], dtype=np.int32)
    )
    _assert_same(again, before)


def test_refit_refuses_bad_node_indices_and_mismatched_outputs() -> None:
    arrays, mask, workers = small_fleet()
    before = fit_gpus(arrays, mask, workers, request())
    with pytest.raises(ValueError, match="changed: value 5 at index 0 is not an index"):
        refit_gpus(
            arrays, mask, workers, request(), previous=before, changed=np.array([5], dtype=np.int32)
        )
    with pytest.raises(TypeError, match="changed: expected dtype int32"):
        refit_gpus(
            arrays, mask, workers, request(), previous=before, changed=np.array([0], dtype=np.int64)
        )
    shorter = replace(before, node_score=before.node_score[:1])
    with pytest.raises(ValueError, match="node_score: length 1"):
        refit_gpus(
            arrays,
            mask,
            workers,
            request(),
            previous=shorter,
            changed=np.array([0], dtype=np.int32),
        )
    with pytest.raises(ValueError, match="node_gpus: must be a C-contiguous 2 x 2 array"):
        refit_gpus(
            arrays,
            mask,
            workers,
            request(gpu_count=2),
            previous=before,
            changed=np.array([0], dtype=np.int32),
        )
