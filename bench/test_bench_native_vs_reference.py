"""GPUResourcesFit's kernel, native against the pure-Python reference, on one fleet of 1,000
nodes x 8 GPUs with about 60% of VRAM requested. Run with
`python -m pytest bench/test_bench_native_vs_reference.py --benchmark-only`; the speed-up of
the medians is printed at the end (see conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.scheduler.gpu_fit import (
    GpuArrays,
    GpuFitRequest,
    GpuState,
    PlacementCode,
    fit_gpus,
)
from tensorfusion.scheduler.gpu_fit_reference import fit_gpus_reference

NODES = 1000
GPUS_PER_NODE = 8
TFLOPS = 312_000  # milli-TFLOPS of an A100 (dense FP16)
VRAM = 80 * 2**30
COMPARISON = "fit_gpus, 1000 nodes x 8 GPUs"

Fleet = tuple[GpuArrays, NDArray[np.uint8], NDArray[np.int32], GpuFitRequest]
Recorder = Callable[[str, str, BenchmarkFixture], None]  # the record_median fixture


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    rng = np.random.default_rng(20240601)
    count = NODES * GPUS_PER_NODE
    arrays = GpuArrays.zeros(count)
    arrays.node[:] = np.repeat(np.arange(NODES, dtype=np.int32), GPUS_PER_NODE)
    arrays.state[:] = rng.choice(list(GpuState), size=count, p=[0.9, 0.05, 0.05])
    arrays.pool[:] = 0
    arrays.model[:] = rng.integers(0, 2, size=count)
    arrays.tflops_capacity[:] = TFLOPS
    arrays.vram_capacity[:] = VRAM
    arrays.tflops_virtual[:] = 2 * TFLOPS
    arrays.vram_virtual[:] = 2 * VRAM
    # Uniform in [20%, 100%): 60% of the fleet's VRAM requested on average.
    arrays.vram_requested[:] = rng.uniform(0.2, 1.0, size=count) * VRAM
    arrays.tflops_requested[:] = rng.uniform(0.2, 1.0, size=count) * TFLOPS
    arrays.vram_limited[:] = arrays.vram_requested * 1.5
    arrays.tflops_limited[:] = arrays.tflops_requested * 1.5
    node_mask = (rng.uniform(size=NODES) < 0.95).astype(np.uint8)
    node_workers = rng.integers(0, 8, size=NODES, dtype=np.int32)
    request = GpuFitRequest(
        tflops_request=20_000,
        tflops_limit=40_000,
        vram_request=8 * 2**30,
        vram_limit=16 * 2**30,
        gpu_count=2,
        pool_id=0,
        mode=PlacementCode.NODE_COMPACT_GPU_LOW_LOAD,
    )
    return arrays, node_mask, node_workers, request


@pytest.mark.benchmark(group=COMPARISON)
def test_native(benchmark: BenchmarkFixture, fleet: Fleet, record_median: Recorder) -> None:
    result = benchmark(fit_gpus, *fleet)
    record_median(COMPARISON, "native", benchmark)
    assert result.best_node >= 0


@pytest.mark.benchmark(group=COMPARISON)
def test_reference(benchmark: BenchmarkFixture, fleet: Fleet, record_median: Recorder) -> None:
    result = benchmark(fit_gpus_reference, *fleet)
    record_median(COMPARISON, "reference", benchmark)
    # The same work: the reference finds the same placement.
    native = fit_gpus(*fleet)
    assert (result.best_node, result.best_gpus) == (native.best_node, native.best_gpus)
