"""kube-scheduler's RequestedToCapacityRatio per-resource score: a resource's utilization in
percent through a piecewise-linear shape.

p = requested * 100 // capacity (100 when capacity is 0 or requested exceeds it); below the
first point the score is the first point's, past the last the last's, and in between it is
interpolated with Go's truncating integer division. Scores are kube's shape scores (0-10)
already multiplied by 10. Unlike Go, requested * 100 cannot overflow here."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tensorfusion import _native
from tensorfusion.errors import ConfigError
from tensorfusion.scheduler.gpu_fit import check_column, reject_first

MAX_UTILIZATION = 100
MAX_SHAPE_SCORE = 100


def check_shape_inputs(
    requested: NDArray[np.int64],
    capacity: NDArray[np.int64],
    utilization: NDArray[np.int64],
    score: NDArray[np.int64],
) -> None:
    """TypeError for a non-array or a dtype other than int64; ConfigError naming the argument
    for a wrong shape or length, a negative requested or capacity, an empty shape, utilization
    outside 0-100 or not strictly increasing, or a score outside 0-100."""
    check_column(requested, "requested", np.int64, ConfigError)
    check_column(capacity, "capacity", np.int64, ConfigError, (len(requested), "requested"))
    check_column(utilization, "utilization", np.int64, ConfigError)
    check_column(score, "score", np.int64, ConfigError, (len(utilization), "utilization"))
    reject_first(ConfigError, "requested", requested, requested < 0, "must be >= 0")
    reject_first(ConfigError, "capacity", capacity, capacity < 0, "must be >= 0")
    if len(utilization) == 0:
        raise ConfigError("utilization", "the shape needs at least one point")
    outside = (utilization < 0) | (utilization > MAX_UTILIZATION)
    reject_first(ConfigError, "utilization", utilization, outside, "must be from 0 to 100")
    not_increasing = np.concatenate(([False], utilization[1:] <= utilization[:-1]))
    reject_first(
        ConfigError,
        "utilization",
        utilization,
        not_increasing,
        "must be greater than the previous point's",
    )
    outside = (score < 0) | (score > MAX_SHAPE_SCORE)
    reject_first(ConfigError, "score", score, outside, "must be from 0 to 100")


def broken_linear(
    requested: NDArray[np.int64],
    capacity: NDArray[np.int64],
    utilization: NDArray[np.int64],
    score: NDArray[np.int64],
) -> NDArray[np.int64]:
    """The shape's score for each (requested, capacity) pair, computed natively. The native
    side checks its input itself: a wrong dtype is a TypeError, anything else that
    check_shape_inputs rejects is a ValueError with the same "argument: problem" message."""
    return _native.broken_linear(requested, capacity, utilization, score)


def _truncating_div(numerator: int, denominator: int) -> int:
    """Go's integer division for a positive denominator (Python's // floors instead)."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _shape_at(p: int, points: list[tuple[int, int]]) -> int:
    for i, (u, s) in enumerate(points):
        if p <= u:
            if i == 0:
                return s
            u0, s0 = points[i - 1]
            return s0 + _truncating_div((s - s0) * (p - u0), u - u0)
    return points[-1][1]


def broken_linear_reference(
    requested: NDArray[np.int64],
    capacity: NDArray[np.int64],
    utilization: NDArray[np.int64],
    score: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Same contract and result as `broken_linear`, in pure Python."""
    check_shape_inputs(requested, capacity, utilization, score)
    points = list(zip(utilization.tolist(), score.tolist(), strict=True))
    result = []
    for req, cap in zip(requested.tolist(), capacity.tolist(), strict=True):
        p = MAX_UTILIZATION if cap == 0 or req > cap else req * 100 // cap
        result.append(_shape_at(p, points))
    return np.array(result, dtype=np.int64)
