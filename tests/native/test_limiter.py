"""The TFLOPS limiter through its binding, clock driven by hand: admission and waits, the
in-flight bound and its decay, correction by measured busy time, counters, and bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from tensorfusion import _native

MS = 1_000_000
WINDOW = 100 * MS


def drained(share: float, **settings: int) -> _native.Limiter:
    """A new limiter with its clock started at t=0, where its balance is exactly 0 (no burst
    allowance yet); left idle, it holds a window's worth at t=WINDOW."""
    limiter = _native.Limiter(share, WINDOW, **settings)
    limiter.complete(0, 0)
    assert limiter.tokens_ns == 0
    return limiter


def test_starts_with_no_burst() -> None:
    limiter = _native.Limiter(0.5, WINDOW, max_in_flight_ns=WINDOW)
    assert limiter.tokens_ns == 0
    # Borrowing: a launch goes at any balance >= 0, even if it costs more.
    assert limiter.admit(0, 10 * MS) == 0
    assert limiter.admit(0, 10 * MS) == 20 * MS


def test_idle_time_buys_a_window_of_burst() -> None:
    limiter = drained(0.5, max_in_flight_ns=WINDOW)
    for _ in range(5):
        assert limiter.admit(WINDOW, 10 * MS) == 0
    # Borrowing: the last launch goes at any balance >= 0, even if it costs more.
    assert limiter.admit(WINDOW, 10 * MS) == 0
    assert limiter.tokens_ns == -10 * MS
    assert limiter.admit(WINDOW, 10 * MS) == 20 * MS


def test_wait_is_the_time_to_refill_the_debt() -> None:
    limiter = drained(0.25)
    assert limiter.admit(0, 2 * MS) == 0
    # 2 ms owed at 0.25 ns per ns: 8 ms.
    assert limiter.admit(0, 2 * MS) == 8 * MS
    assert limiter.admit(4 * MS, 2 * MS) == 4 * MS
    assert limiter.admit(8 * MS, 2 * MS) == 0


def test_refill_is_capped_at_the_window() -> None:
    limiter = drained(0.5)
    limiter.admit(10 * WINDOW, 0)
    assert limiter.tokens_ns == 0.5 * WINDOW


def test_a_clock_stepping_back_refills_nothing() -> None:
    limiter = drained(0.5)
    assert limiter.admit(10 * MS, 6 * MS) == 0
    assert limiter.tokens_ns == -1 * MS
    assert limiter.admit(5 * MS, 0) == 2 * MS
    assert limiter.tokens_ns == -1 * MS


def test_measured_busy_time_corrects_the_estimate() -> None:
    limiter = drained(0.5)
    assert limiter.admit(0, 1 * MS) == 0
    assert limiter.tokens_ns == -1 * MS
    limiter.complete(0, 3 * MS)  # it really took 3 ms: 2 ms more owed
    assert limiter.tokens_ns == -3 * MS
    assert limiter.in_flight_ns == 0
    assert limiter.admit(0, 1 * MS) == 6 * MS


def test_an_overestimate_is_refunded() -> None:
    limiter = drained(0.5)
    limiter.admit(0, 4 * MS)
    limiter.complete(0, 1 * MS)
    assert limiter.tokens_ns == -1 * MS


def test_completions_refund_the_mean_estimate_and_add_up() -> None:
    limiter = drained(1.0)
    for cost in (1 * MS, 2 * MS, 6 * MS):
        assert limiter.admit(WINDOW, cost) == 0
    assert limiter.in_flight_ns == 9 * MS
    limiter.complete(WINDOW, 1 * MS)
    assert limiter.in_flight_ns == 6 * MS  # 9 - mean 3
    limiter.complete(WINDOW, 2 * MS)
    limiter.complete(WINDOW, 6 * MS)
    assert limiter.in_flight_ns == 0
    # Charged 9 ms of estimates, then corrected to the 9 ms measured.
    assert limiter.tokens_ns == WINDOW - 9 * MS


def test_a_completion_with_nothing_in_flight_is_charged_in_full() -> None:
    limiter = drained(0.5)
    limiter.complete(0, 2 * MS)
    assert limiter.tokens_ns == -2 * MS
    assert limiter.in_flight_ns == 0


def test_work_in_flight_is_bounded() -> None:
    limiter = drained(1.0, max_in_flight_ns=10 * MS)
    for _ in range(5):
        assert limiter.admit(WINDOW, 2 * MS) == 0
    # 10 ms queued: the next 2 ms must wait for 2 ms to drain.
    assert limiter.admit(WINDOW, 2 * MS) == 2 * MS
    limiter.complete(WINDOW + 1 * MS, 2 * MS)
    assert limiter.admit(WINDOW + 1 * MS, 2 * MS) == 0


def test_a_launch_larger_than_the_bound_goes_when_nothing_is_in_flight() -> None:
    limiter = _native.Limiter(1.0, WINDOW, max_in_flight_ns=1 * MS)
    assert limiter.admit(0, 50 * MS) == 0
    assert limiter.admit(0, 50 * MS) > 0


def test_the_bound_decays_when_nothing_completes() -> None:
    # Completions are lost: the limiter must still let launches through, at about its rate.
    limiter = _native.Limiter(0.5, WINDOW, max_in_flight_ns=10 * MS, max_wait_ns=3 * MS)
    now = 0
    launches = 0
    while now < 2_000 * MS:
        wait = limiter.admit(now, 1 * MS)
        assert 0 <= wait <= 3 * MS
        if wait == 0:
            launches += 1
        now += max(wait, 1)
    # 0.5 ns per ns of decay (and of refill) admits one 1 ms launch per 2 ms.
    assert 990 <= launches <= 1_010


def test_a_single_wait_is_capped() -> None:
    limiter = drained(0.1, max_wait_ns=5 * MS)
    assert limiter.admit(0, 1_000 * MS) == 0
    waits = 0
    now = 0
    while (wait := limiter.admit(now, 1 * MS)) > 0:
        assert wait <= 5 * MS
        waits += 1
        now += wait
    # The whole second of debt is paid at 0.1: 10 s, in capped slices.
    assert now == 10_000 * MS
    assert waits == 2_000


def test_counters() -> None:
    limiter = drained(0.5)
    assert limiter.counters() == {"launches": 0, "throttled": 0, "wait_ns": 0, "busy_ns": 0}
    assert limiter.admit(0, 1 * MS) == 0
    assert limiter.admit(0, 1 * MS) == 2 * MS
    assert limiter.admit(1 * MS, 1 * MS) == 1 * MS
    assert limiter.admit(2 * MS, 1 * MS) == 0
    limiter.complete(3 * MS, 1 * MS)
    assert limiter.counters() == {
        "launches": 2,
        "throttled": 1,  # one launch, told to wait twice
        "wait_ns": 3 * MS,
        "busy_ns": 1 * MS,
    }


def test_set_share_changes_the_rate() -> None:
    limiter = drained(0.5)
    limiter.set_share(0.25)
    assert limiter.share == 0.25
    limiter.admit(0, 1 * MS)
    assert limiter.admit(0, 1 * MS) == 4 * MS
    limiter.set_share(1.0)
    assert limiter.admit(0, 1 * MS) == 1 * MS


@pytest.mark.parametrize("share", [0.0, -0.5, 1.0000001, 2.0, math.nan, math.inf, -math.inf])
def test_set_share_refuses_bad_values_and_keeps_the_old_one(share: float) -> None:
    limiter = _native.Limiter(0.5)
    with pytest.raises(ValueError, match=r"^share: must be a number in \(0, 1\]"):
        limiter.set_share(share)
    assert limiter.share == 0.5


@pytest.mark.parametrize("share", [0.0, -1.0, 1.5, math.nan])
def test_constructor_refuses_a_bad_share(share: float) -> None:
    with pytest.raises(ValueError, match=r"^share: "):
        _native.Limiter(share)


@pytest.mark.parametrize("argument", ["window_ns", "max_in_flight_ns", "max_wait_ns"])
@pytest.mark.parametrize("value", [0, -1, 3_600_000_000_001])
def test_constructor_refuses_bad_durations(argument: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}: must be from 1 to 3600000000000 ns"):
        _native.Limiter(0.5, **{argument: value})


def test_constructor_accepts_the_edges() -> None:
    limiter = _native.Limiter(1.0, 1, 3_600_000_000_000, 1)
    assert limiter.share == 1.0
    assert _native.Limiter(5e-324).share == 5e-324


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda lim: lim.admit(-1, 0), "now_ns"),
        (lambda lim: lim.admit(0, -1), "cost_ns"),
        (lambda lim: lim.complete(-1, 0), "now_ns"),
        (lambda lim: lim.complete(0, -5), "busy_ns"),
        (lambda lim: lim.noop(0, -1), "cost_ns"),
        (lambda lim: lim.grant(-1, 0), "now_ns"),
        (lambda lim: lim.grant(0, -1), "most_ns"),
        (lambda lim: lim.refund(-1, 0), "now_ns"),
        (lambda lim: lim.refund(0, -1), "unspent_ns"),
    ],
)
def test_negative_times_are_refused(
    call: Callable[[_native.Limiter], object], argument: str
) -> None:
    limiter = _native.Limiter(0.5)
    with pytest.raises(ValueError, match=rf"^{argument}: must be >= 0"):
        call(limiter)
    assert limiter.counters()["launches"] == 0
    assert limiter.tokens_ns == 0


def test_wrong_types_are_type_errors() -> None:
    limiter = _native.Limiter(0.5)
    with pytest.raises(TypeError):
        limiter.admit("0", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        limiter.admit(2**63, 1)
    with pytest.raises(TypeError):
        _native.Limiter("half")  # type: ignore[arg-type]


def test_noop_does_nothing() -> None:
    limiter = _native.Limiter(0.5)
    assert limiter.noop(0, 10**12) == 0
    assert limiter.tokens_ns == 0
    assert limiter.counters()["launches"] == 0


def test_admit_loop_admits_at_the_rate() -> None:
    limiter = drained(0.5)
    # One call per us, 1 us each: half of them go.
    admitted = _native.limiter_admit_loop(limiter, 1_000_000, 0, 1_000, 1_000)
    assert admitted == pytest.approx(500_000, abs=2)
    assert limiter.counters()["launches"] == admitted


def test_admit_loop_refuses_negative_arguments() -> None:
    with pytest.raises(ValueError, match=r"^calls: must be >= 0"):
        _native.limiter_admit_loop(_native.Limiter(0.5), -1, 0, 1, 1)
