"""FragmentationAware's kernel: native equals the pure-Python reference on random fleets, bad
input is rejected naming the field, and one hand-computed placement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.scheduler.fragmentation import (
    HALF_SCORE_PPM,
    TIE_DIVISOR,
    FragmentationResult,
    HostRequest,
    Mix,
    PodSide,
    RequestClasses,
    RequestShapes,
    fragmentation_scores,
)
from tensorfusion.scheduler.fragmentation_reference import fragmentation_scores_reference
from tensorfusion.scheduler.gpu_fit import GpuArrays, GpuFitRequest, GpuReason, fit_gpus

Pod = GpuFitRequest | HostRequest
Scores = Callable[..., FragmentationResult]


def reference(*args: Any, **kwargs: Any) -> FragmentationResult:
    return fragmentation_scores_reference(*args, **kwargs, half_score_ppm=HALF_SCORE_PPM)


BOTH = pytest.mark.parametrize(
    "scores", [fragmentation_scores, reference], ids=["native", "reference"]
)


def i64(*values: int) -> NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def i32(*values: int) -> NDArray[np.int32]:
    return np.array(values, dtype=np.int32)


@dataclass(frozen=True)
class Case:
    arrays: GpuArrays
    gpu_fits: NDArray[np.uint8]
    candidates: NDArray[np.int32]
    pod: Pod
    side: PodSide
    mix: Mix

    def run(self, scores: Scores) -> FragmentationResult:
        return scores(
            self.arrays, self.gpu_fits, self.candidates, pod=self.pod, side=self.side, mix=self.mix
        )


# --- A hand-computed placement ---------------------------------------------------------------


def two_gpus() -> Case:
    """One node, two GPUs of capacity 100: GPU 0 half used, GPU 1 free. The mix is one class
    of whole-GPU pods; the pod is a half-GPU slice that fits both GPUs."""
    arrays = GpuArrays.zeros(2)
    for name in ("tflops_capacity", "vram_capacity", "tflops_virtual", "vram_virtual"):
        getattr(arrays, name)[:] = 100
    for name in ("tflops_requested", "vram_requested", "tflops_limited", "vram_limited"):
        getattr(arrays, name)[0] = 50
    whole = RequestShapes(i64(100), i64(100), i64(-1), i64(-1), i64(100), i64(100), i32(-1))
    mix = Mix(whole, RequestClasses(i32(0), i32(1), i64(0), i64(0), i64(1)))
    pod = GpuFitRequest(tflops_request=50, tflops_limit=50, vram_request=50, vram_limit=50)
    side = PodSide(0, 0, i64(10), i64(10))
    return Case(arrays, np.ones(2, np.uint8), i32(0), pod, side, mix)


@BOTH
def test_slice_goes_to_the_half_used_gpu(scores: Scores) -> None:
    # Before: GPU 0's free half (500000 ppm) is all the whole-GPU class cannot use.
    # On GPU 0: nothing is left unusable, the change is -500000: 50 + 50 * 5e5 / 7.5e5 -> 83.
    # On GPU 1: no GPU fits a whole pod, all 1e6 ppm is unusable, +500000 plus the tie-break
    # 500000 / 100: 50 - 50 * 505000 / 755000 -> 17.
    case = two_gpus()
    both = case.run(scores)
    assert both.score.tolist() == [83]
    assert both.gpus.tolist() == [[0]]
    free_only = replace(case, gpu_fits=np.array([0, 1], np.uint8)).run(scores)
    assert free_only.score.tolist() == [17]
    assert free_only.gpus.tolist() == [[1]]


@BOTH
def test_host_request_takes_no_gpus(scores: Scores) -> None:
    case = replace(two_gpus(), gpu_fits=np.zeros(2, np.uint8), pod=HostRequest(pool_id=-1))
    result = case.run(scores)
    assert result.gpus.shape == (1, 0)
    # No cores asked for: the fragmentation stays; only the tie-break counts, the node's free
    # share (1.5e6 ppm) / 100: 50 - 50 * 15000 / (15000 + 250000) rounds to 47.
    assert result.score.tolist() == [47]
    # A class needing 5 cores; the pod's 8 leave 2 of 10, so the node can no longer host it
    # and all its free share (1.5e6 ppm) becomes unusable, up from 500000: +1e6 scores 10.
    mix = replace(case.mix, classes=replace(case.mix.classes, cpu=i64(5)))
    pressed = replace(case, side=PodSide(8, 0, i64(10), i64(10)), mix=mix)
    assert pressed.run(scores).score.tolist() == [10]


# --- Bad input -------------------------------------------------------------------------------


def _with_shape(case: Case, **columns: Any) -> Case:
    return replace(case, mix=replace(case.mix, shapes=replace(case.mix.shapes, **columns)))


def _with_class(case: Case, **columns: Any) -> Case:
    return replace(case, mix=replace(case.mix, classes=replace(case.mix.classes, **columns)))


def _with_gpu(case: Case, name: str, value: int) -> Case:
    column = getattr(case.arrays, name).copy()
    column[0] = value
    return replace(case, arrays=replace(case.arrays, **{name: column}))


BAD_VALUES: list[Any] = [
    pytest.param(lambda c: _with_class(c, weight=i64(-1)), "weight", id="negative-weight"),
    pytest.param(lambda c: _with_class(c, weight=i64(1_000_001)), "weight", id="heavy-weight"),
    pytest.param(lambda c: _with_class(c, shape=i32(1)), "shape", id="shape-out-of-range"),
    pytest.param(lambda c: _with_class(c, shape=i32(-1)), "shape", id="negative-shape"),
    pytest.param(lambda c: _with_class(c, gpu_count=i32(0)), "gpu_count", id="no-gpus-class"),
    pytest.param(lambda c: _with_class(c, cpu=i64(-1)), "cpu", id="negative-class-cpu"),
    pytest.param(lambda c: _with_class(c, memory=i64(0, 0)), "memory", id="class-length"),
    pytest.param(
        lambda c: _with_shape(c, percent_request_ppm=i64(1_000_001)),
        "percent_request_ppm",
        id="percent-over",
    ),
    pytest.param(
        lambda c: _with_shape(c, vram_limit=i64(-1)), "vram_limit", id="negative-shape-vram"
    ),
    pytest.param(lambda c: _with_shape(c, model_id=i32(-2)), "model_id", id="bad-model"),
    pytest.param(lambda c: replace(c, candidates=i32(1)), "candidates", id="not-a-node"),
    pytest.param(lambda c: replace(c, candidates=i32(-1)), "candidates", id="negative-node"),
    pytest.param(lambda c: replace(c, candidates=i32(0, 0)), "candidates", id="candidates-repeat"),
    pytest.param(
        lambda c: replace(c, gpu_fits=np.zeros(2, np.uint8)), "gpu_fits", id="no-fitting-gpu"
    ),
    pytest.param(
        lambda c: replace(c, pod=replace(c.pod, gpu_count=3)), "gpu_fits", id="too-few-gpus"
    ),
    pytest.param(
        lambda c: replace(c, gpu_fits=np.ones(3, np.uint8)), "gpu_fits", id="gpu-fits-length"
    ),
    pytest.param(
        lambda c: replace(c, side=replace(c.side, node_memory_free=i64(1, 2))),
        "node_memory_free",
        id="side-length",
    ),
    pytest.param(
        lambda c: _with_gpu(c, "vram_requested", -1), "vram_requested", id="negative-amount"
    ),
    pytest.param(lambda c: _with_gpu(c, "state", 9), "state", id="unknown-state"),
    pytest.param(lambda c: _with_gpu(c, "node", 1), "node", id="gpu-of-no-node"),
]


@BOTH
@pytest.mark.parametrize(("spoil", "field"), BAD_VALUES)
def test_bad_values_name_the_field(
    scores: Scores, spoil: Callable[[Case], Case], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        spoil(two_gpus()).run(scores)


def test_too_few_gpus_counts_only_the_pool() -> None:
    # Both GPUs fit, but only GPU 1 is in the pod's pool.
    case = _with_gpu(two_gpus(), "pool", 1)
    pod = GpuFitRequest(
        tflops_request=50, tflops_limit=50, vram_request=50, vram_limit=50, gpu_count=2, pool_id=0
    )
    with pytest.raises(ValueError, match="gpu_fits: node 0 has fewer than 2 GPUs"):
        replace(case, pod=pod).run(fragmentation_scores)


BAD_DTYPES: list[Any] = [
    pytest.param(lambda c: replace(c, gpu_fits=c.gpu_fits.astype(bool)), "gpu_fits", id="fits"),
    pytest.param(
        lambda c: replace(c, candidates=c.candidates.astype(np.int64)), "candidates", id="cand"
    ),
    pytest.param(
        lambda c: replace(c, side=replace(c.side, node_cpu_free=i32(10))),
        "node_cpu_free",
        id="cpu-free",
    ),
    pytest.param(lambda c: _with_class(c, weight=i32(1)), "weight", id="weight"),
    pytest.param(lambda c: _with_shape(c, model_id=i64(-1)), "model_id", id="model"),
    pytest.param(lambda c: _with_shape(c, tflops_request=[100]), "tflops_request", id="list"),
]


@BOTH
@pytest.mark.parametrize(("spoil", "field"), BAD_DTYPES)
def test_wrong_dtype_is_a_type_error(
    scores: Scores, spoil: Callable[[Case], Case], field: str
) -> None:
    with pytest.raises(TypeError, match=field):
        spoil(two_gpus()).run(scores)


def native_kwargs(case: Case) -> dict[str, Any]:
    mix = case.mix
    return {
        **case.arrays.columns(),
        "gpu_fits": case.gpu_fits,
        "candidates": case.candidates,
        "request": case.pod,
        "pod_cpu": case.side.cpu,
        "pod_memory": case.side.memory,
        "node_cpu_free": case.side.node_cpu_free,
        "node_memory_free": case.side.node_memory_free,
        **{f"shape_{spec.name}": getattr(mix.shapes, spec.name) for spec in fields(mix.shapes)},
        **{f"class_{spec.name}": getattr(mix.classes, spec.name) for spec in fields(mix.classes)},
        "half_score_ppm": HALF_SCORE_PPM,
        "tie_divisor": TIE_DIVISOR,
    }


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("half_score_ppm", -1, "half_score_ppm: must be from 0 to"),
        ("tie_divisor", 0, "tie_divisor: must be from 1 to"),
        ("request", HostRequest(pool_id=-1, gpu_count=129), "gpu_count: must be from 0 to 128"),
        ("request", HostRequest(pool_id=-1, gpu_count=-1), "gpu_count: must be from 0 to 128"),
        ("request", HostRequest(pool_id=-2), "pool_id: must be from -1"),
        ("request", HostRequest(pool_id=0, vram_limit=-1), "vram_limit: must be from 0"),
        ("request", HostRequest(pool_id=0, percent_limit_ppm=-2), "percent_limit_ppm: must be"),
    ],
)
def test_native_checks_its_scalars(argument: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        _native.fragmentation_scores(**(native_kwargs(two_gpus()) | {argument: value}))


def test_native_result_types() -> None:
    score, gpus = _native.fragmentation_scores(**native_kwargs(two_gpus()))
    assert (score.dtype, gpus.dtype) == (np.dtype(np.int32), np.dtype(np.int32))
    assert (score.shape, gpus.shape) == ((1,), (1, 1))


# --- Property: native == reference -----------------------------------------------------------

# Amounts are drawn in units of a scale; at 2**55 a GPU's sums pass int64 once the pod's
# request is placed on it, while each stored value still fits.
SCALES = [1, 1000, 2**55]


@st.composite
def gpu_columns(draw: st.DrawFn, node_count: int, scale: int) -> GpuArrays:
    """GPUs whose usage is mostly within their bounds, sometimes over."""
    per_node = [draw(st.integers(0, 8)) for _ in range(node_count)]
    arrays = GpuArrays.zeros(sum(per_node))
    arrays.node[:] = np.repeat(np.arange(node_count, dtype=np.int32), per_node)

    def within(bound: int) -> int:
        return draw(st.one_of(st.just(0), st.integers(0, bound // 2), st.integers(0, bound + 10)))

    for i in range(arrays.count):
        arrays.state[i] = draw(st.sampled_from([0] * 6 + [1, 2]))
        arrays.pool[i] = draw(st.sampled_from([-1, 0, 0, 0, 1]))
        arrays.model[i] = draw(st.sampled_from([-1, 0, 0, 0, 1]))
        for kind in ("tflops", "vram"):
            capacity = draw(st.integers(0, 100))
            virtual = capacity + draw(st.integers(0, 100))
            units = {
                "capacity": capacity,
                "virtual": virtual,
                "requested": within(capacity),
                "limited": within(virtual),
            }
            for name, value in units.items():
                getattr(arrays, f"{kind}_{name}")[i] = value * scale
    return arrays


@st.composite
def mixes(draw: st.DrawFn, scale: int) -> Mix:
    shape_count = draw(st.integers(1, 6))
    class_count = draw(st.integers(1, 8))

    def column(values: st.SearchStrategy[int], count: int, dtype: type[np.generic]) -> Any:
        return np.array(draw(st.lists(values, min_size=count, max_size=count)), dtype=dtype)

    amount = st.integers(0, 60).map(lambda units: units * scale)
    ppm = st.one_of(st.just(-1), st.integers(0, 1_000_000))
    shapes = RequestShapes(
        tflops_request=column(amount, shape_count, np.int64),
        tflops_limit=column(amount, shape_count, np.int64),
        percent_request_ppm=column(ppm, shape_count, np.int64),
        percent_limit_ppm=column(ppm, shape_count, np.int64),
        vram_request=column(amount, shape_count, np.int64),
        vram_limit=column(amount, shape_count, np.int64),
        model_id=column(st.sampled_from([-1, -1, 0, 1]), shape_count, np.int32),
    )
    classes = RequestClasses(
        shape=column(st.integers(0, shape_count - 1), class_count, np.int32),
        gpu_count=column(st.integers(1, 3), class_count, np.int32),
        cpu=column(st.integers(0, 40), class_count, np.int64),
        memory=column(st.integers(0, 40), class_count, np.int64),
        weight=column(st.one_of(st.integers(0, 1000), st.just(0)), class_count, np.int64),
    )
    return Mix(shapes, classes)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    scale = draw(st.sampled_from(SCALES))
    node_count = draw(st.integers(1, 6))
    arrays = draw(gpu_columns(node_count, scale))
    free = st.integers(-5, 50)
    side = PodSide(
        cpu=draw(st.integers(0, 20)),
        memory=draw(st.integers(0, 20)),
        node_cpu_free=np.array([draw(free) for _ in range(node_count)], np.int64),
        node_memory_free=np.array([draw(free) for _ in range(node_count)], np.int64),
    )
    pool_id = draw(st.sampled_from([-1, -1, 0]))
    if draw(st.integers(0, 4)) == 0:
        pod: Pod = HostRequest(pool_id)
        gpu_fits = np.zeros(arrays.count, np.uint8)
        feasible = np.arange(node_count, dtype=np.int32)
    else:
        amount = st.integers(0, 60).map(lambda units: units * scale)
        ppm = st.one_of(st.just(-1), st.integers(0, 1_000_000))
        pod = GpuFitRequest(
            tflops_request=draw(amount),
            tflops_limit=draw(amount),
            vram_request=draw(amount),
            vram_limit=draw(amount),
            percent_request_ppm=draw(ppm),
            percent_limit_ppm=draw(ppm),
            gpu_count=draw(st.integers(1, 3)),
            pool_id=pool_id,
            model_id=draw(st.sampled_from([-1, -1, 0])),
        )
        fit = fit_gpus(arrays, np.ones(node_count, np.uint8), np.zeros(node_count, np.int32), pod)
        gpu_fits = (fit.gpu_reason == GpuReason.FITS).astype(np.uint8)
        feasible = np.flatnonzero(fit.node_reason == GpuReason.FITS).astype(np.int32)
    chosen = (
        draw(st.lists(st.sampled_from(feasible.tolist()), min_size=1, unique=True))
        if len(feasible)
        else []
    )
    candidates = np.array(sorted(chosen), dtype=np.int32)
    return Case(arrays, gpu_fits, candidates, pod, side, draw(mixes(scale)))


@settings(deadline=None, max_examples=60)
@given(cases())
def test_native_equals_reference(case: Case) -> None:
    native = case.run(fragmentation_scores)
    expected = case.run(reference)
    for got, want in ((native.score, expected.score), (native.gpus, expected.gpus)):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        assert np.array_equal(got, want)
    assert ((native.score >= 0) & (native.score <= 100)).all()
