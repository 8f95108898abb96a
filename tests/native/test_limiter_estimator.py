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
