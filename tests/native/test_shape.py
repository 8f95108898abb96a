"""RequestedToCapacityRatio's piecewise-linear shape: kube-scheduler's rules at hand-picked
utilizations, bad input, and native == reference on random shapes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.gpu_fit import INT64_MAX
from tensorfusion.scheduler.shape import broken_linear, broken_linear_reference

Shape = Callable[..., NDArray[np.int64]]
BOTH = pytest.mark.parametrize(
    "shape", [broken_linear, broken_linear_reference], ids=["native", "reference"]
)

# The guide's shape, {0: 0, 75: 9, 100: 10}, with scores multiplied by 10.
GUIDE = ([0, 75, 100], [0, 90, 100])


def i64(values: list[int]) -> NDArray[np.int64]:
    return np.array(values, dtype=np.int64)


def score_of(
    shape: Shape, points: tuple[list[int], list[int]], requested: list[int], capacity: list[int]
) -> list[int]:
    utilization, score = points
    result = shape(i64(requested), i64(capacity), i64(utilization), i64(score))
    assert result.dtype == np.int64
    return [int(v) for v in result.tolist()]


@BOTH
@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (0, 0),
        (1, 1),  # 90 * 1 / 75 = 1.2, truncated
        (37, 44),  # 90 * 37 / 75 = 44.4
        (50, 60),
        (74, 88),  # 88.8
        (75, 90),
        (80, 92),  # 90 + 10 * 5 / 25
        (99, 99),  # 90 + 10 * 24 / 25 = 99.6
        (100, 100),
    ],
)
def test_guide_shape(shape: Shape, percent: int, expected: int) -> None:
    assert score_of(shape, GUIDE, [percent], [100]) == [expected]


@BOTH
def test_utilization_is_truncated_before_the_shape(shape: Shape) -> None:
    # 2/3 of the capacity is 66%, not 67%: 90 * 66 / 75 = 79.2.
    assert score_of(shape, GUIDE, [2, 200], [3, 300]) == [79, 79]


@BOTH
def test_capacity_zero_and_over_request_count_as_full(shape: Shape) -> None:
    assert score_of(shape, GUIDE, [0, 5, 101, 100], [0, 0, 100, 100]) == [100, 100, 100, 100]
    assert score_of(shape, ([0, 100], [100, 0]), [0, 7], [0, 3]) == [0, 0]


@BOTH
def test_decreasing_shape_truncates_toward_zero(shape: Shape) -> None:
    # 100 + (-100 * 10) / 30: Go gives 100 - 33 = 67 where Python's // would give 66.
    points = ([0, 30], [100, 0])
    assert score_of(shape, points, [10, 15, 30, 60], [100, 100, 100, 100]) == [67, 50, 0, 0]


@BOTH
def test_least_allocated_like_shape(shape: Shape) -> None:
    points = ([0, 100], [100, 0])
    assert score_of(shape, points, [0, 1, 33, 100], [100, 100, 100, 100]) == [100, 99, 67, 0]


@BOTH
def test_before_the_first_and_past_the_last_point(shape: Shape) -> None:
    points = ([20, 40], [30, 70])
    assert score_of(shape, points, [0, 20, 30, 40, 41, 100], [100] * 6) == [30, 30, 50, 70, 70, 70]
    assert score_of(shape, ([50], [20]), [0, 50, 90], [100] * 3) == [20, 20, 20]


@BOTH
def test_large_amounts_do_not_overflow(shape: Shape) -> None:
    # requested * 100 would pass int64 here; the percentages are still exact.
    requested = [INT64_MAX - 1, INT64_MAX // 2, INT64_MAX // 4 * 3, INT64_MAX]
    capacity = [INT64_MAX] * 4
    # 99%, 49%, 74% (a hair under 3/4) and 100%.
    assert score_of(shape, ([0, 100], [0, 100]), requested, capacity) == [99, 49, 74, 100]


@BOTH
def test_empty_input(shape: Shape) -> None:
    assert score_of(shape, GUIDE, [], []) == []


# --- Bad input -------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([-1], [10], [0], [0]), "requested: value -1 at index 0 must be >= 0"),
        (([1, 1], [10, -3], [0], [0]), "capacity: value -3 at index 1 must be >= 0"),
        (([1], [10], [], []), "utilization: the shape needs at least one point"),
        (([1], [10], [0, 50, 50], [0, 1, 2]), "utilization: value 50 at index 2 must be greater"),
        (([1], [10], [60, 50], [0, 1]), "utilization: value 50 at index 1 must be greater"),
        (([1], [10], [0, 101], [0, 1]), "utilization: value 101 at index 1 must be from 0 to 100"),
        (([1], [10], [-5, 10], [0, 1]), "utilization: value -5 at index 0 must be from 0 to 100"),
        (([1], [10], [0, 10], [0, 101]), "score: value 101 at index 1 must be from 0 to 100"),
        (([1], [10], [0, 10], [-1, 1]), "score: value -1 at index 0 must be from 0 to 100"),
        (([1], [10, 20], [0], [0]), r"capacity: length 2, expected 1 \(the length of requested\)"),
        (([1], [10], [0, 10], [0]), r"score: length 1, expected 2 \(the length of utilization\)"),
    ],
)
def test_bad_values_name_the_argument(
    shape: Shape, args: tuple[list[int], ...], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        shape(*(i64(a) for a in args))


@BOTH
def test_bad_arrays(shape: Shape) -> None:
    one = i64([1])
    with pytest.raises(TypeError, match=r"^capacity: expected dtype int64, got int32"):
        shape(one, np.array([1], dtype=np.int32), one, one)
    with pytest.raises(TypeError, match=r"^score: expected a numpy array of int64, got list"):
        shape(one, one, one, [1])
    with pytest.raises(ValueError, match=r"^requested: must be 1-D, got 2 dimensions"):
        shape(np.zeros((1, 1), dtype=np.int64), one, one, one)
    with pytest.raises(ValueError, match=r"^utilization: must be C-contiguous"):
        shape(one, one, np.arange(4, dtype=np.int64)[::2], i64([0, 1]))


def test_reference_raises_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^utilization: value 7 at index 1") as caught:
        broken_linear_reference(i64([1]), i64([1]), i64([9, 7]), i64([0, 0]))
    assert caught.value.field == "utilization"


# --- Property: native == reference -----------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[NDArray[np.int64], ...]:
    utilization = sorted(draw(st.sets(st.integers(0, 100), min_size=1, max_size=8)))
    score = draw(
        st.lists(st.integers(0, 100), min_size=len(utilization), max_size=len(utilization))
    )
    size = draw(st.integers(0, 30))
    amount = st.one_of(st.integers(0, 200), st.integers(0, INT64_MAX))
    requested = draw(st.lists(amount, min_size=size, max_size=size))
    capacity = draw(st.lists(amount, min_size=size, max_size=size))
    return i64(requested), i64(capacity), i64(utilization), i64(score)


@given(cases())
def test_native_equals_reference(case: tuple[NDArray[np.int64], ...]) -> None:
    native = broken_linear(*case)
    reference = broken_linear_reference(*case)
    assert native.dtype == reference.dtype == np.int64
    assert native.tolist() == reference.tolist()
    assert all(0 <= v <= 100 for v in native.tolist())
