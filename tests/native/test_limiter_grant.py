"""Grants: busy time the limiter hands out ahead of launches while its bucket holds more than a
reserve of a quarter of the burst allowance, so launches can go without asking one by one; and
refunds of what a grant left unspent. The clock is driven by hand."""

from __future__ import annotations

import pytest

from tests.native.test_limiter import MS, WINDOW, drained


def test_an_empty_bucket_grants_nothing() -> None:
    limiter = drained(0.5)
    assert limiter.grant(0, 10 * MS) == 0
    assert limiter.tokens_ns == 0


def test_nothing_is_granted_below_the_reserve() -> None:
    limiter = drained(0.5)  # holds 50 ms at t=WINDOW; the reserve is 12.5 ms
    assert limiter.grant(25 * MS, 10 * MS) == 0  # 12.5 ms held: all of it reserve
    assert limiter.tokens_ns == 12.5 * MS


def test_the_tokens_above_the_reserve_are_granted_up_to_the_request() -> None:
    limiter = drained(0.5)
    assert limiter.grant(WINDOW, 10 * MS) == 10 * MS
    assert limiter.tokens_ns == 40 * MS
    assert limiter.grant(WINDOW, 100 * MS) == 27.5 * MS  # down to the reserve
    assert limiter.tokens_ns == 12.5 * MS
    assert limiter.grant(WINDOW, 100 * MS) == 0


def test_a_grant_paid_for_launches_that_outrun_the_share_ends_in_waits() -> None:
    # Launches spending grants as fast as they come drain the bucket to its reserve; from
    # there every launch is admitted one by one, and the debt it runs up makes the next wait.
    limiter = drained(0.5)
    spent = 0
    while granted := limiter.grant(WINDOW, 5 * MS):
        spent += granted
    assert spent == 37.5 * MS
    assert limiter.admit(WINDOW, 20 * MS) == 0
    assert limiter.admit(WINDOW, 1 * MS) == 15 * MS  # 7.5 ms owed at 0.5


def test_a_refund_gives_the_unspent_part_back() -> None:
    limiter = drained(0.5)
    granted = limiter.grant(WINDOW, 10 * MS)
    limiter.refund(WINDOW, granted - 4 * MS)  # 4 ms of it were spent
    assert limiter.tokens_ns == 46 * MS


def test_a_refund_never_overfills_the_bucket() -> None:
    limiter = drained(0.5)
    granted = limiter.grant(WINDOW, 10 * MS)
    # Idle long enough to refill to capacity while the grant was out: the refund is dropped,
    # as any allowance beyond one window is.
    limiter.refund(10 * WINDOW, granted)
    assert limiter.tokens_ns == 50 * MS


def test_a_refund_pays_into_a_debt_too() -> None:
    limiter = drained(0.5)
    assert limiter.admit(0, 10 * MS) == 0
    limiter.refund(0, 4 * MS)
    assert limiter.tokens_ns == -6 * MS


def test_a_grant_follows_the_share() -> None:
    limiter = drained(0.5)
    limiter.set_share(0.1)  # a window refills 10 ms at 0.1, of which 2.5 ms are the reserve
    assert limiter.grant(WINDOW, 100 * MS) == 7.5 * MS


def test_a_zero_request_grants_nothing() -> None:
    limiter = drained(0.5)
    assert limiter.grant(WINDOW, 0) == 0
    assert limiter.tokens_ns == 50 * MS


def test_wrong_types_are_type_errors() -> None:
    limiter = drained(0.5)
    with pytest.raises(TypeError):
        limiter.grant(0, "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        limiter.refund(0, 2**63)
