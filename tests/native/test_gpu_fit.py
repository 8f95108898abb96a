"""GPUResourcesFit's kernel: hand-built fleets for each rule, bad input, and a property that the
native kernel and the pure-Python reference agree exactly on random fleets."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion import _native
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.gpu_fit import (
    AMOUNT_FIELDS,
    GPU_DTYPES,
    INT64_MAX,
    GpuArrays,
    GpuFitRequest,
    GpuFitResult,
    GpuReason,
    GpuState,
    PlacementCode,
    fit_gpus,
)
from tensorfusion.scheduler.gpu_fit_reference import fit_gpus_reference

Fit = Callable[..., GpuFitResult]
BOTH = pytest.mark.parametrize("fit", [fit_gpus, fit_gpus_reference], ids=["native", "reference"])

CAP = 100  # capacities of the hand-built GPUs: shares are then plain percentages


@dataclass(frozen=True)
class Gpu:
    node: int = 0
    state: int = GpuState.READY
    pool: int = -1
    model: int = -1
    tflops_capacity: int = CAP
    vram_capacity: int = CAP
    tflops_virtual: int = 2 * CAP
    vram_virtual: int = 2 * CAP
    tflops_requested: int = 0
    vram_requested: int = 0
    tflops_limited: int = 0
    vram_limited: int = 0


def build(gpus: list[Gpu]) -> GpuArrays:
    arrays = GpuArrays.zeros(len(gpus))
    for i, gpu in enumerate(gpus):
        for spec in fields(gpu):
            getattr(arrays, spec.name)[i] = getattr(gpu, spec.name)
    return arrays


def request(**overrides: Any) -> GpuFitRequest:
    values: dict[str, Any] = {
        "tflops_request": 10,
        "tflops_limit": 10,
        "vram_request": 10,
        "vram_limit": 10,
        "mode": PlacementCode.COMPACT_FIRST,
    }
    return GpuFitRequest(**(values | overrides))


def run(
    fit: Fit,
    gpus: list[Gpu],
    req: GpuFitRequest,
    mask: list[int] | None = None,
    workers: list[int] | None = None,
) -> GpuFitResult:
    node_count = len(mask or workers or []) or max((g.node for g in gpus), default=-1) + 1
    node_mask = np.array(mask if mask is not None else [1] * node_count, dtype=np.uint8)
    node_workers = np.array(workers if workers is not None else [0] * node_count, dtype=np.int32)
    return fit(build(gpus), node_mask, node_workers, req)


# --- Filter: one reason per check, in order --------------------------------------------------

REASON_CASES = [
    pytest.param(Gpu(), {}, GpuReason.FITS, GpuReason.FITS, id="fits"),
    pytest.param(Gpu(state=GpuState.DEVICE_PLUGIN), {}, GpuReason.DEVICE_PLUGIN,
                 GpuReason.NOT_ENOUGH_GPUS, id="device-plugin"),
    pytest.param(Gpu(state=GpuState.NOT_READY), {}, GpuReason.NOT_READY,
                 GpuReason.NOT_ENOUGH_GPUS, id="not-ready"),
    pytest.param(Gpu(pool=1), {"pool_id": 0}, GpuReason.POOL_MISMATCH,
                 GpuReason.NOT_ENOUGH_GPUS, id="pool"),
    pytest.param(Gpu(pool=1), {"pool_id": -1}, GpuReason.FITS, GpuReason.FITS, id="any-pool"),
    pytest.param(Gpu(model=3), {"model_id": 2}, GpuReason.MODEL_MISMATCH,
                 GpuReason.NOT_ENOUGH_GPUS, id="model"),
    pytest.param(Gpu(model=3), {"model_id": -1}, GpuReason.FITS, GpuReason.FITS, id="any-model"),
    pytest.param(Gpu(tflops_requested=95), {}, GpuReason.INSUFFICIENT_TFLOPS,
                 GpuReason.NOT_ENOUGH_GPUS, id="tflops"),
    pytest.param(Gpu(vram_requested=95), {}, GpuReason.INSUFFICIENT_VRAM,
                 GpuReason.NOT_ENOUGH_GPUS, id="vram"),
    pytest.param(Gpu(tflops_limited=195), {}, GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL,
                 GpuReason.NOT_ENOUGH_GPUS, id="tflops-limit"),
    pytest.param(Gpu(vram_limited=195), {}, GpuReason.VRAM_LIMIT_OVER_VIRTUAL,
                 GpuReason.NOT_ENOUGH_GPUS, id="vram-limit"),
    # The first failing check wins.
    pytest.param(Gpu(state=GpuState.DEVICE_PLUGIN, pool=1, vram_requested=99), {"pool_id": 0},
                 GpuReason.DEVICE_PLUGIN, GpuReason.NOT_ENOUGH_GPUS, id="state-before-pool"),
    pytest.param(Gpu(pool=1, model=1), {"pool_id": 0, "model_id": 0}, GpuReason.POOL_MISMATCH,
                 GpuReason.NOT_ENOUGH_GPUS, id="pool-before-model"),
    pytest.param(Gpu(model=1, tflops_requested=99), {"model_id": 0}, GpuReason.MODEL_MISMATCH,
                 GpuReason.NOT_ENOUGH_GPUS, id="model-before-capacity"),
    pytest.param(Gpu(tflops_requested=99, vram_requested=99), {}, GpuReason.INSUFFICIENT_TFLOPS,
                 GpuReason.NOT_ENOUGH_GPUS, id="tflops-before-vram"),
    pytest.param(Gpu(vram_requested=99, tflops_limited=199), {}, GpuReason.INSUFFICIENT_VRAM,
                 GpuReason.NOT_ENOUGH_GPUS, id="physical-before-virtual"),
    pytest.param(Gpu(tflops_limited=199, vram_limited=199), {},
                 GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL, GpuReason.NOT_ENOUGH_GPUS,
                 id="tflops-limit-before-vram-limit"),
]  # fmt: skip


@BOTH
@pytest.mark.parametrize(("gpu", "overrides", "gpu_reason", "node_reason"), REASON_CASES)
def test_gpu_reason(
    fit: Fit, gpu: Gpu, overrides: dict[str, Any], gpu_reason: GpuReason, node_reason: GpuReason
) -> None:
    result = run(fit, [gpu], request(**overrides))
    assert result.gpu_reason.tolist() == [gpu_reason]
    assert result.node_reason.tolist() == [node_reason]
    fits = gpu_reason == GpuReason.FITS
    assert (result.gpu_score[0] >= 0) == fits
    assert result.best_node == (0 if fits else -1)
    assert result.best_gpus == ((0,) if fits else ())


@BOTH
@pytest.mark.parametrize(
    ("mask", "workers", "reason"),
    [
        pytest.param([0], [0], GpuReason.NODE_FILTERED, id="filtered"),
        pytest.param([1], [2], GpuReason.TOO_MANY_WORKERS, id="full-node"),
        pytest.param([0], [2], GpuReason.NODE_FILTERED, id="filtered-before-full"),
        pytest.param([1], [1], GpuReason.FITS, id="last-worker-slot"),
    ],
)
def test_node_level_reasons_mark_every_gpu(
    fit: Fit, mask: list[int], workers: list[int], reason: GpuReason
) -> None:
    # The node-level checks come before the GPU's own: a GPU that would fail them reports them.
    gpus = [Gpu(), Gpu(state=GpuState.NOT_READY)]
    result = run(fit, gpus, request(max_worker_per_node=2), mask, workers)
    expected_second = GpuReason.NOT_READY if reason == GpuReason.FITS else reason
    assert result.gpu_reason.tolist() == [reason, expected_second]
    assert result.node_reason.tolist() == [reason]


@BOTH
def test_node_without_gpus_and_empty_fleet(fit: Fit) -> None:
    result = run(fit, [Gpu(node=1)], request(), mask=[1, 1, 0])
    assert result.node_reason.tolist() == [GpuReason.NO_GPUS, GpuReason.FITS, 1]
    assert result.best_node == 1

    empty = run(fit, [], request(gpu_count=2), mask=[])
    assert empty.best_node == -1
    assert empty.node_gpus.shape == (0, 2)
    assert empty.gpu_reason.shape == (0,)


@BOTH
def test_not_enough_gpus(fit: Fit) -> None:
    gpus = [Gpu(), Gpu(vram_requested=99), Gpu(node=1), Gpu(node=1)]
    result = run(fit, gpus, request(gpu_count=2))
    assert result.node_reason.tolist() == [GpuReason.NOT_ENOUGH_GPUS, GpuReason.FITS]
    assert result.node_gpus.tolist() == [[-1, -1], [2, 3]]
    assert result.node_score[0] == -1
    assert result.best_gpus == (2, 3)


def test_describe() -> None:
    phrases = {reason: reason.describe() for reason in GpuReason}
    assert len(set(phrases.values())) == len(GpuReason)
    assert phrases[GpuReason.INSUFFICIENT_VRAM] == "insufficient VRAM"
    assert phrases[GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL] == "TFLOPS limit over the virtual capacity"
    assert phrases[GpuReason.DEVICE_PLUGIN] == "held by the NVIDIA device plugin"


# --- Capacity boundaries ---------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("tflops_requested", GpuReason.INSUFFICIENT_TFLOPS),
        ("vram_requested", GpuReason.INSUFFICIENT_VRAM),
        ("tflops_limited", GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL),
        ("vram_limited", GpuReason.VRAM_LIMIT_OVER_VIRTUAL),
    ],
)
def test_exactly_full_fits_one_more_does_not(fit: Fit, field: str, reason: GpuReason) -> None:
    bound = 2 * CAP if field.endswith("limited") else CAP
    exactly = Gpu(**{field: bound - 10})  # the request's 10 fills it to the unit
    over = Gpu(node=1, **{field: bound - 9})
    result = run(fit, [exactly, over], request())
    assert result.gpu_reason.tolist() == [GpuReason.FITS, reason]


@BOTH
def test_sums_do_not_wrap_around(fit: Fit) -> None:
    huge = Gpu(
        tflops_capacity=INT64_MAX,
        vram_capacity=INT64_MAX,
        tflops_virtual=INT64_MAX,
        vram_virtual=INT64_MAX,
    )
    full = replace(huge, node=1, vram_requested=INT64_MAX)
    result = run(fit, [huge, full], request(vram_request=INT64_MAX, vram_limit=1))
    assert result.gpu_reason.tolist() == [GpuReason.FITS, GpuReason.INSUFFICIENT_VRAM]
    assert result.gpu_score[0] == 70  # 0.7 * 100% of VRAM + 0.3 * ~0% of TFLOPS
    assert result.best_gpus == (0,)


# --- Scores and placement modes --------------------------------------------------------------

# GPU 0: 10% of VRAM used, GPU 1: 50%; the request adds 10% VRAM and 10% TFLOPS.
TWO_LOADS = [Gpu(vram_requested=10), Gpu(vram_requested=50)]


@BOTH
@pytest.mark.parametrize(
    ("mode", "scores", "chosen"),
    [
        # used share: 0.7 * 20 + 0.3 * 10 = 17 and 0.7 * 60 + 0.3 * 10 = 45; the fuller wins
        (PlacementCode.COMPACT_FIRST, [17, 45], 1),
        # free share: 0.7 * 80 + 0.3 * 90 = 83 and 0.7 * 40 + 0.3 * 90 = 55; the emptier wins
        (PlacementCode.LOW_LOAD_FIRST, [83, 55], 0),
    ],
)
def test_gpu_modes(fit: Fit, mode: PlacementCode, scores: list[int], chosen: int) -> None:
    result = run(fit, TWO_LOADS, request(mode=mode))
    assert result.gpu_score.tolist() == scores
    assert result.best_gpus == (chosen,)
    assert result.node_score.tolist() == [scores[chosen]]


@BOTH
def test_node_compact_gpu_low_load_packs_nodes_and_spreads_within(fit: Fit) -> None:
    gpus = [
        Gpu(pool=0, vram_requested=10),
        Gpu(pool=0, vram_requested=50),
        Gpu(node=1, pool=0, vram_requested=80),
        Gpu(node=1, pool=0, vram_requested=60),
        # Not usable by the pod (another pool): counts toward neither load nor capacity.
        Gpu(node=1, pool=7),
    ]
    result = run(fit, gpus, request(mode=PlacementCode.NODE_COMPACT_GPU_LOW_LOAD, pool_id=0))
    assert result.gpu_reason.tolist()[-1] == GpuReason.POOL_MISMATCH
    # GPUs score by free share as in LowLoadFirst: 0.7 * 10 + 27 = 34 and 0.7 * 30 + 27 = 48.
    assert result.gpu_score.tolist() == [83, 55, 34, 48, -1]
    # Nodes score by used share after placement: node 0 (10+50+10)/200 VRAM, 10/200 TFLOPS
    # -> 0.7 * 35 + 0.3 * 5 = 26; node 1 (80+60+10)/200, 10/200 -> 0.7 * 75 + 0.3 * 5 = 54.
    assert result.node_score.tolist() == [26, 54]
    assert result.best_node == 1
    assert result.best_gpus == (3,)


@BOTH
def test_full_gpus_count_toward_node_load(fit: Fit) -> None:
    # A GPU too full for the pod is still part of its node's load and capacity.
    gpus = [Gpu(), Gpu(vram_requested=100, tflops_requested=100)]
    result = run(fit, gpus, request(mode=PlacementCode.NODE_COMPACT_GPU_LOW_LOAD))
    # (0 + 100 + 10) / 200 VRAM and TFLOPS alike: 55%.
    assert result.node_score.tolist() == [55]


@BOTH
@pytest.mark.parametrize(
    ("weights", "mode", "score"),
    [
        ((0.5, 0.0), PlacementCode.COMPACT_FIRST, 10),  # 0.5 * 20 = 10
        ((0.5, 0.5), PlacementCode.COMPACT_FIRST, 15),  # 10 + 5 = 15
        ((0.25, 0.0), PlacementCode.COMPACT_FIRST, 5),  # 5.0 -> 5
        ((0.125, 0.25), PlacementCode.COMPACT_FIRST, 5),  # 2.5 + 2.5 = 5
        ((0.225, 0.0), PlacementCode.COMPACT_FIRST, 5),  # 4.5 rounds half up to 5
        ((0.0, 0.0), PlacementCode.LOW_LOAD_FIRST, 0),
        ((3.0, 3.0), PlacementCode.LOW_LOAD_FIRST, 100),  # 510 clamps to 100
    ],
)
def test_weights_rounding_and_clamp(
    fit: Fit, weights: tuple[float, float], mode: PlacementCode, score: int
) -> None:
    vram_weight, tflops_weight = weights
    req = request(mode=mode, vram_weight=vram_weight, tflops_weight=tflops_weight)
    result = run(fit, [Gpu(vram_requested=10)], req)
    assert result.gpu_score.tolist() == [score]


@BOTH
def test_zero_capacity_counts_as_full(fit: Fit) -> None:
    empty = Gpu(tflops_capacity=0, vram_capacity=0, tflops_virtual=0, vram_virtual=0)
    nothing = request(tflops_request=0, tflops_limit=0, vram_request=0, vram_limit=0)
    result = run(fit, [empty, Gpu(node=1)], nothing)
    assert result.gpu_score.tolist() == [100, 0]
    assert result.best_node == 0
    assert run(fit, [empty], request()).gpu_reason.tolist() == [GpuReason.INSUFFICIENT_TFLOPS]


@BOTH
def test_multi_gpu_choice_order_and_mean(fit: Fit) -> None:
    # LowLoadFirst scores: 83 (10% used), 55 (50%), 83 (10%), 69 (30%), 76 (20%).
    loads = [10, 50, 10, 30, 20]
    gpus = [Gpu(vram_requested=v) for v in loads]
    result = run(fit, gpus, request(mode=PlacementCode.LOW_LOAD_FIRST, gpu_count=3))
    assert result.gpu_score.tolist() == [83, 55, 83, 69, 76]
    # By score, ties to the lower index.
    assert result.node_gpus.tolist() == [[0, 2, 4]]
    # Rounded mean: (83 + 83 + 76) / 3 = 80.67 -> 81.
    assert result.node_score.tolist() == [81]


@BOTH
def test_mean_rounds_half_up(fit: Fit) -> None:
    # Scores 83 and 76 -> 79.5 -> 80.
    gpus = [Gpu(vram_requested=10), Gpu(vram_requested=20)]
    result = run(fit, gpus, request(mode=PlacementCode.LOW_LOAD_FIRST, gpu_count=2))
    assert result.node_score.tolist() == [80]


@BOTH
def test_best_node_ties_go_to_the_lower_index(fit: Fit) -> None:
    gpus = [Gpu(node=0, vram_requested=60), Gpu(node=1), Gpu(node=2)]
    result = run(fit, gpus, request(mode=PlacementCode.LOW_LOAD_FIRST))
    assert result.node_score[1] == result.node_score[2] > result.node_score[0]
    assert result.best_node == 1
    assert result.best_gpus == (1,)


# --- Percent mode ----------------------------------------------------------------------------


@BOTH
def test_percent_request_rounds_up_per_gpu(fit: Fit) -> None:
    # A third of 100,000 milli-TFLOPS is 33,333.3: the request is 33,334.
    cap = 100_000
    base = Gpu(tflops_capacity=cap, tflops_virtual=cap)
    gpus = [
        replace(base, tflops_requested=cap - 33_334),
        replace(base, tflops_requested=cap - 33_333),
    ]
    # The fixed TFLOPS fields are ignored in percent mode.
    req = request(percent_request_ppm=333_333, tflops_request=10**15, tflops_limit=0)
    result = run(fit, gpus, req)
    assert result.gpu_reason.tolist() == [GpuReason.FITS, GpuReason.INSUFFICIENT_TFLOPS]


@BOTH
def test_percent_limit_against_the_virtual_capacity(fit: Fit) -> None:
    # Half of each GPU's physical TFLOPS; the virtual bound is twice the capacity.
    gpus = [Gpu(tflops_limited=150), Gpu(tflops_limited=151)]
    req = request(percent_limit_ppm=500_000, tflops_limit=10**15)
    result = run(fit, gpus, req)
    assert result.gpu_reason.tolist() == [GpuReason.FITS, GpuReason.TFLOPS_LIMIT_OVER_VIRTUAL]


@BOTH
def test_percent_request_scales_with_each_gpu(fit: Fit) -> None:
    # Half of a small and of a big GPU: both end half full, so both score the same.
    gpus = [Gpu(tflops_capacity=40), Gpu(tflops_capacity=4000, tflops_virtual=8000)]
    req = request(percent_request_ppm=500_000, vram_request=0, tflops_weight=1.0, vram_weight=0)
    result = run(fit, gpus, req)
    assert result.gpu_score.tolist() == [50, 50]


@BOTH
def test_percent_of_the_largest_capacity(fit: Fit) -> None:
    gpu = Gpu(tflops_capacity=INT64_MAX, tflops_virtual=INT64_MAX)
    result = run(fit, [gpu, replace(gpu, tflops_requested=1)], request(percent_request_ppm=10**6))
    assert result.gpu_reason.tolist() == [GpuReason.FITS, GpuReason.INSUFFICIENT_TFLOPS]


# --- Request validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tflops_request", -1),
        ("tflops_limit", -5),
        ("vram_request", -1),
        ("vram_limit", 2**63),
        ("percent_request_ppm", -2),
        ("percent_request_ppm", 1_000_001),
        ("percent_limit_ppm", 2_000_000),
        ("gpu_count", 0),
        ("gpu_count", 129),
        ("pool_id", -2),
        ("model_id", 2**31),
        ("max_worker_per_node", 0),
        ("mode", 3),
        ("mode", -1),
        ("vram_weight", -0.1),
        ("tflops_weight", math.nan),
        ("tflops_weight", math.inf),
        ("vram_weight", 10**400),
        ("gpu_count", True),
        ("gpu_count", 1.0),
        ("vram_request", "1Gi"),
        ("vram_weight", "0.7"),
        ("vram_weight", None),
    ],
)
def test_bad_request_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: ") as caught:
        request(**{field: value})
    assert caught.value.field == field


def test_request_normalises_numbers() -> None:
    req = request(gpu_count=np.int64(2), mode=1, vram_weight=1, tflops_weight=np.float32(0.5))
    assert type(req.gpu_count) is int
    assert req.mode is PlacementCode.LOW_LOAD_FIRST
    assert type(req.vram_weight) is float
    assert req.tflops_weight == 0.5


def test_request_defaults_follow_upstream() -> None:
    req = GpuFitRequest(tflops_request=1, tflops_limit=1, vram_request=1, vram_limit=1)
    assert (req.max_worker_per_node, req.vram_weight, req.tflops_weight) == (256, 0.7, 0.3)
    assert req.mode is PlacementCode.NODE_COMPACT_GPU_LOW_LOAD
    assert (req.gpu_count, req.pool_id, req.model_id, req.percent_request_ppm) == (1, -1, -1, -1)


# --- Array validation ------------------------------------------------------------------------


def small_fleet() -> tuple[GpuArrays, np.ndarray, np.ndarray]:
    arrays = build([Gpu(), Gpu(), Gpu(node=1)])
    return arrays, np.ones(2, dtype=np.uint8), np.zeros(2, dtype=np.int32)


@BOTH
@pytest.mark.parametrize("field", list(GPU_DTYPES))
def test_wrong_dtype_is_a_type_error(fit: Fit, field: str) -> None:
    arrays, mask, workers = small_fleet()
    bad = replace(arrays, **{field: getattr(arrays, field).astype(np.float64)})
    with pytest.raises(TypeError, match=f"^{field}: expected dtype"):
        fit(bad, mask, workers, request())


@BOTH
@pytest.mark.parametrize("field", list(GPU_DTYPES))
def test_wrong_length_names_the_field(fit: Fit, field: str) -> None:
    arrays, mask, workers = small_fleet()
    bad = replace(arrays, **{field: getattr(arrays, field)[:2]})
    # Shortening `node` makes every other column the odd one out.
    named = "state" if field == "node" else field
    with pytest.raises(ValueError, match=rf"(^|: ){named}: length"):
        fit(bad, mask, workers, request())


@BOTH
@pytest.mark.parametrize(
    ("field", "index", "value", "message"),
    [
        ("node", 0, 1, "value 0 at index 1 is below the previous GPU's node"),
        ("node", 0, -1, "value -1 at index 0 must be >= 0"),
        ("node", 2, 2, "value 2 at index 2 is not an index into node_mask"),
        ("state", 1, 3, "value 3 at index 1 is not a GPU state"),
        *[(field, 2, -1, "value -1 at index 2 must be >= 0") for field in AMOUNT_FIELDS],
    ],
)
def test_bad_gpu_values_name_field_and_index(
    fit: Fit, field: str, index: int, value: int, message: str
) -> None:
    arrays, mask, workers = small_fleet()
    getattr(arrays, field)[index] = value
    with pytest.raises(ValueError, match=rf"(^|: ){field}: {message}"):
        fit(arrays, mask, workers, request())


@BOTH
def test_bad_array_layouts(fit: Fit) -> None:
    arrays, mask, workers = small_fleet()
    with pytest.raises(
        TypeError, match=r"^vram_capacity: expected a numpy array of int64, got list"
    ):
        fit(replace(arrays, vram_capacity=cast(Any, [1, 2, 3])), mask, workers, request())
    two_d = arrays.vram_capacity.reshape(3, 1)
    with pytest.raises(ValueError, match="vram_capacity: must be 1-D, got 2 dimensions"):
        fit(replace(arrays, vram_capacity=two_d), mask, workers, request())
    strided = np.zeros(6, dtype=np.int64)[::2]
    with pytest.raises(ValueError, match="vram_capacity: must be C-contiguous"):
        fit(replace(arrays, vram_capacity=strided), mask, workers, request())
    swapped = arrays.vram_capacity.astype(arrays.vram_capacity.dtype.newbyteorder())
    with pytest.raises(TypeError, match=r"^vram_capacity: expected dtype int64"):
        fit(replace(arrays, vram_capacity=swapped), mask, workers, request())


@BOTH
def test_bad_node_arrays(fit: Fit) -> None:
    arrays, mask, workers = small_fleet()
    with pytest.raises(TypeError, match=r"^node_mask: expected dtype uint8, got bool"):
        fit(arrays, mask.astype(bool), workers, request())
    with pytest.raises(TypeError, match=r"^node_workers: expected dtype int32, got int64"):
        fit(arrays, mask, workers.astype(np.int64), request())
    with pytest.raises(ValueError, match=r"node_workers: length 3, expected 2"):
        fit(arrays, mask, np.zeros(3, dtype=np.int32), request())
    with pytest.raises(ValueError, match=r"node_workers: value -1 at index 1 must be >= 0"):
        fit(arrays, mask, np.array([0, -1], dtype=np.int32), request())
    with pytest.raises(ValueError, match=r"node: value 1 at index 2 is not an index"):
        fit(arrays, mask[:1], workers[:1], request())


def test_zeros() -> None:
    arrays = GpuArrays.zeros(3)
    assert arrays.count == 3
    for name, dtype in GPU_DTYPES.items():
        assert getattr(arrays, name).dtype == dtype, name
    assert arrays.pool.tolist() == arrays.model.tolist() == [-1, -1, -1]
    arrays.check()


# --- The native entry point checks its own input -------------------------------------------


def native_kwargs() -> dict[str, Any]:
    arrays, mask, workers = small_fleet()
    req = request()
    return {
        **{spec.name: getattr(arrays, spec.name) for spec in fields(arrays)},
        "node_mask": mask,
        "node_workers": workers,
        **{spec.name: getattr(req, spec.name) for spec in fields(req)},
    }


def test_native_result_types() -> None:
    gpu_reason, gpu_score, node_reason, node_score, node_gpus, best = _native.fit_gpus(
        **native_kwargs()
    )
    u8, i32 = np.dtype(np.uint8), np.dtype(np.int32)
    assert (gpu_reason.dtype, gpu_score.dtype) == (u8, i32)
    assert (node_reason.dtype, node_score.dtype, node_gpus.dtype) == (u8, i32, i32)
    assert node_gpus.shape == (2, 1)
    assert best == 0


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("gpu_count", 0, "must be from 1 to 128, got 0"),
        ("gpu_count", 129, "must be from 1 to 128, got 129"),
        ("mode", 3, "must be from 0 to 2, got 3"),
        ("percent_request_ppm", -2, "must be from -1 to 1000000, got -2"),
        ("percent_limit_ppm", 1_000_001, "must be from -1 to 1000000, got 1000001"),
        ("tflops_request", -1, "must be from 0 to 9223372036854775807, got -1"),
        ("vram_limit", -1, "must be from 0 to"),
        ("pool_id", -2, "must be from -1 to 2147483647, got -2"),
        ("model_id", 2**31, "must be from -1 to 2147483647, got 2147483648"),
        ("max_worker_per_node", 0, "must be from 1 to"),
        ("tflops_weight", math.nan, "must be a finite number >= 0, got nan"),
        ("vram_weight", -0.5, "must be a finite number >= 0, got -0.5"),
        ("vram_weight", math.inf, "must be a finite number >= 0, got inf"),
    ],
)
def test_native_checks_request_values(argument: str, value: object, message: str) -> None:
    # GpuFitRequest rejects these first; the extension module must not rely on it.
    with pytest.raises(ValueError, match=f"^{argument}: {message}"):
        _native.fit_gpus(**(native_kwargs() | {argument: value}))


def test_reference_checks_raise_fleet_errors() -> None:
    arrays, mask, workers = small_fleet()
    arrays.state[0] = 7
    with pytest.raises(FleetError, match=r"^GpuArrays: state: value 7 at index 0") as caught:
        arrays.check()
    assert caught.value.field == "state"
    arrays.state[0] = GpuState.READY
    with pytest.raises(FleetError, match=r"^nodes: node_workers: length 1, expected 2"):
        fit_gpus_reference(arrays, mask, workers[:1], request())


# --- Property: native == reference -----------------------------------------------------------

# Amounts are drawn in units of a scale; at 2**55 a node's sums pass int64 and saturate while
# each value (at most 250 units) still fits.
SCALES = [1, 1000, 2**55]


@st.composite
def gpus(draw: st.DrawFn, node: int, scale: int) -> Gpu:
    """A GPU whose usage is mostly within its bounds (so that many fit) and sometimes over."""

    def within(bound: int) -> int:
        return draw(st.one_of(st.just(0), st.integers(0, bound // 2), st.integers(0, bound + 10)))

    tflops_capacity, vram_capacity = draw(st.integers(0, 100)), draw(st.integers(0, 100))
    tflops_virtual = tflops_capacity + draw(st.integers(0, 100))
    vram_virtual = vram_capacity + draw(st.integers(0, 100))
    units = {
        "tflops_capacity": tflops_capacity,
        "vram_capacity": vram_capacity,
        "tflops_virtual": tflops_virtual,
        "vram_virtual": vram_virtual,
        "tflops_requested": within(tflops_capacity),
        "vram_requested": within(vram_capacity),
        "tflops_limited": within(tflops_virtual),
        "vram_limited": within(vram_virtual),
    }
    return Gpu(
        node=node,
        state=draw(st.sampled_from([0] * 8 + [1, 2])),
        pool=draw(st.sampled_from([-1, 0, 0, 0, 1])),
        model=draw(st.sampled_from([-1, 0, 0, 0, 1])),
        **{name: value * scale for name, value in units.items()},
    )


@st.composite
def fleets(
    draw: st.DrawFn, max_nodes: int = 40
) -> tuple[GpuArrays, np.ndarray, np.ndarray, GpuFitRequest]:
    scale = draw(st.sampled_from(SCALES))
    node_count = draw(st.integers(1, max_nodes))
    fleet = [
        draw(gpus(node, scale))
        for node in range(node_count)
        for _ in range(draw(st.integers(0, 8)))
    ]
    mask = draw(
        st.lists(st.sampled_from([1, 1, 1, 1, 1, 0]), min_size=node_count, max_size=node_count)
    )
    workers = draw(
        st.lists(st.sampled_from([0, 0, 0, 1, 3]), min_size=node_count, max_size=node_count)
    )
    amount = st.one_of(st.integers(0, 10), st.integers(0, 60))
    ppm = st.one_of(st.just(-1), st.integers(0, 1_000_000))
    weight = st.one_of(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), st.floats(0, 10))
    req = GpuFitRequest(
        tflops_request=draw(amount) * scale,
        tflops_limit=draw(amount) * scale,
        vram_request=draw(amount) * scale,
        vram_limit=draw(amount) * scale,
        percent_request_ppm=draw(ppm),
        percent_limit_ppm=draw(ppm),
        gpu_count=draw(st.integers(1, 4)),
        pool_id=draw(st.sampled_from([-1, -1, 0])),
        model_id=draw(st.sampled_from([-1, -1, 0])),
        max_worker_per_node=draw(st.integers(1, 8)),
        mode=draw(st.sampled_from(PlacementCode)),
        vram_weight=draw(weight),
        tflops_weight=draw(weight),
    )
    return (
        build(fleet),
        np.array(mask, dtype=np.uint8),
        np.array(workers, dtype=np.int32),
        req,
    )


@settings(deadline=None, max_examples=40)
@given(fleets())
def test_native_equals_reference(
    case: tuple[GpuArrays, np.ndarray, np.ndarray, GpuFitRequest],
) -> None:
    arrays, mask, workers, req = case
    native = fit_gpus(arrays, mask, workers, req)
    reference = fit_gpus_reference(arrays, mask, workers, req)
    for spec in fields(native):
        got, want = getattr(native, spec.name), getattr(reference, spec.name)
        if isinstance(got, np.ndarray):
            assert got.dtype == want.dtype, spec.name
            assert got.shape == want.shape, spec.name
            assert np.array_equal(got, want), spec.name
        else:
            assert got == want, spec.name
    # The best placement is a feasible node's chosen row, made of fitting GPUs of that node.
    if native.best_node >= 0:
        assert native.node_reason[native.best_node] == GpuReason.FITS
        assert native.node_score[native.best_node] == native.node_score.max()
        chosen = list(native.best_gpus)
        assert len(chosen) == req.gpu_count
        assert all(native.gpu_reason[g] == GpuReason.FITS for g in chosen)
        assert all(arrays.node[g] == native.best_node for g in chosen)
    else:
        assert not (native.node_reason == GpuReason.FITS).any()


def _large_random_fleet(seed: int, nodes: int) -> tuple[GpuArrays, np.ndarray, np.ndarray]:
    """Enough GPUs (8 per node) for the kernel to split the scan across two threads."""
    rng = np.random.default_rng(seed)
    count = nodes * 8
    arrays = GpuArrays.zeros(count)
    arrays.node[:] = np.repeat(np.arange(nodes, dtype=np.int32), 8)
    arrays.state[:] = rng.choice([0, 0, 0, 0, 0, 0, 1, 2], count)
    arrays.pool[:] = rng.choice([0, 0, 0, 1], count)
    arrays.tflops_capacity[:] = 989_000
    arrays.vram_capacity[:] = 80 * 2**30
    arrays.tflops_virtual[:] = arrays.tflops_capacity * 5
    arrays.vram_virtual[:] = arrays.vram_capacity * 2
    arrays.tflops_requested[:] = rng.integers(0, 989_001, count)
    arrays.vram_requested[:] = rng.integers(0, 80 * 2**30 + 1, count)
    arrays.tflops_limited[:] = arrays.tflops_requested * rng.integers(1, 5, count)
    arrays.vram_limited[:] = arrays.vram_requested + rng.integers(0, 2**30, count)
    mask = rng.choice(np.array([1, 1, 1, 0], dtype=np.uint8), nodes)
    workers = rng.integers(0, 4, nodes).astype(np.int32)
    return arrays, mask, workers


@pytest.mark.parametrize("mode", list(PlacementCode))
@pytest.mark.parametrize("gpu_count", [1, 3])
def test_native_equals_reference_on_a_cluster_scanned_in_two_halves(
    mode: PlacementCode, gpu_count: int
) -> None:
    arrays, mask, workers = _large_random_fleet(seed=gpu_count * 10 + mode, nodes=2500)
    req = GpuFitRequest(
        tflops_request=100_000,
        tflops_limit=300_000,
        vram_request=8 * 2**30,
        vram_limit=12 * 2**30,
        gpu_count=gpu_count,
        pool_id=0,
        max_worker_per_node=3,
        mode=mode,
    )
    native = fit_gpus(arrays, mask, workers, req)
    reference = fit_gpus_reference(arrays, mask, workers, req)
    for spec in fields(native):
        got, want = getattr(native, spec.name), getattr(reference, spec.name)
        assert np.array_equal(got, want) if isinstance(got, np.ndarray) else got == want
    assert native.best_node >= 0


def test_a_negative_amount_is_found_in_the_second_half_too() -> None:
    arrays, mask, workers = _large_random_fleet(seed=1, nodes=2500)
    arrays.vram_limited[-1] = -1
    with pytest.raises(ValueError, match=r"vram_limited: value -1 at index 19999 must be >= 0"):
        fit_gpus(arrays, mask, workers, request())
