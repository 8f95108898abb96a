"""The per launch-site cost estimator: exponential average, collisions, bad input."""

from __future__ import annotations

import math

import pytest

from tensorfusion import _native


def test_unknown_site_gives_the_fallback() -> None:
    estimator = _native.CostEstimator()
    assert estimator.estimate(42, 7_000) == 7_000


def test_first_measurement_is_taken_as_is_then_averaged() -> None:
    estimator = _native.CostEstimator(slots=16, weight=0.5)
    estimator.observe(3, 1_000)
    assert estimator.estimate(3, 0) == 1_000
    estimator.observe(3, 3_000)
    assert estimator.estimate(3, 0) == 2_000
    estimator.observe(3, 0)
    assert estimator.estimate(3, 0) == 1_000


def test_sites_are_kept_apart() -> None:
    estimator = _native.CostEstimator(slots=16, weight=1.0)
    estimator.observe(1, 100)
    estimator.observe(2, 200)
    assert (estimator.estimate(1, 0), estimator.estimate(2, 0)) == (100, 200)


def test_a_colliding_site_takes_the_slot_over() -> None:
    estimator = _native.CostEstimator(slots=4, weight=0.5)
    estimator.observe(1, 100)
    estimator.observe(5, 900)  # 5 % 4 == 1
    assert estimator.estimate(5, 0) == 900
    assert estimator.estimate(1, -1) == -1


def test_the_largest_site_id_works() -> None:
    estimator = _native.CostEstimator(slots=3)
    estimator.observe(2**64 - 1, 10)
    assert estimator.estimate(2**64 - 1, 0) == 10


@pytest.mark.parametrize("slots", [0, -1, 2**20 + 1])
def test_bad_slots(slots: int) -> None:
    with pytest.raises(ValueError, match=r"^slots: must be from 1 to 1048576"):
        _native.CostEstimator(slots=slots)


@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5, math.nan])
def test_bad_weight(weight: float) -> None:
    with pytest.raises(ValueError, match=r"^weight: must be a number in \(0, 1\]"):
        _native.CostEstimator(weight=weight)


def test_negative_busy_time_is_refused() -> None:
    estimator = _native.CostEstimator()
    with pytest.raises(ValueError, match=r"^busy_ns: must be >= 0"):
        estimator.observe(1, -1)
    assert estimator.estimate(1, 5) == 5


def test_a_table_of_any_size_maps_sites_by_remainder() -> None:
    estimator = _native.CostEstimator(slots=3, weight=1.0)
    estimator.observe(1, 100)
    estimator.observe(4, 400)  # 4 % 3 == 1: takes the slot over
    assert (estimator.estimate(1, -1), estimator.estimate(4, -1)) == (-1, 400)
    estimator.observe(2, 200)  # another slot
    assert estimator.estimate(4, -1) == 400


def test_separate_weights_follow_falls_at_once_and_rises_slowly() -> None:
    estimator = _native.CostEstimator(slots=16, rise_weight=0.25, fall_weight=1.0)
    estimator.observe(7, 1_000)
    estimator.observe(7, 5_000)  # a quarter of the way up
    assert estimator.estimate(7, 0) == 2_000
    estimator.observe(7, 400)  # all the way down
    assert estimator.estimate(7, 0) == 400


def test_separate_weights_can_rise_faster_than_they_fall() -> None:
    estimator = _native.CostEstimator(rise_weight=1.0, fall_weight=0.5)
    estimator.observe(3, 1_000)
    estimator.observe(3, 3_000)
    estimator.observe(3, 1_000)
    assert estimator.estimate(3, 0) == 2_000


@pytest.mark.parametrize("argument", ["rise_weight", "fall_weight"])
@pytest.mark.parametrize("weight", [0.0, -0.1, 1.5, math.nan, math.inf])
def test_bad_separate_weights_name_the_argument(argument: str, weight: float) -> None:
    weights = {"rise_weight": 0.5, "fall_weight": 0.5, argument: weight}
    with pytest.raises(ValueError, match=rf"^{argument}: must be a number in \(0, 1\]"):
        _native.CostEstimator(
            rise_weight=weights["rise_weight"], fall_weight=weights["fall_weight"]
        )


def test_bad_slots_with_separate_weights() -> None:
    with pytest.raises(ValueError, match=r"^slots: must be from 1 to 1048576"):
        _native.CostEstimator(slots=0, rise_weight=0.5, fall_weight=0.5)


def test_separate_weights_are_keywords_and_come_as_a_pair() -> None:
    with pytest.raises(TypeError):
        _native.CostEstimator(16, 0.5, 1.0)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        _native.CostEstimator(rise_weight=0.5)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        _native.CostEstimator(weight=0.5, fall_weight=0.5)  # type: ignore[call-overload]
