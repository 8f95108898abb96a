"""Leader election over the local store's lease, with an injected clock."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tensorfusion.errors import StoreError
from tensorfusion.operator.leader_election import LeaderElection
from tensorfusion.store.local import LocalStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store.db")


def test_one_leader_then_takeover_after_expiry(store: LocalStore) -> None:
    clock = Clock()
    a = LeaderElection(store, "a", duration_s=15, renew_every_s=5, clock=clock)
    b = LeaderElection(store, "b", duration_s=15, renew_every_s=5, clock=clock)
    assert a.step()
    assert not b.step()
    assert a.is_leader.is_set()
    assert not a.lost.is_set()
    assert b.lost.is_set()
    clock.now += 10
    assert a.step()  # renewed
    clock.now += 14
    assert not b.step()  # still within the renewed lease
    clock.now += 2  # a stopped renewing 16 s ago
    assert b.step()
    assert not a.step()  # a finds out it lost
    assert a.lost.is_set()
    assert not a.is_leader.is_set()


def test_release_hands_over_at_once(store: LocalStore) -> None:
    clock = Clock()
    a = LeaderElection(store, "a", clock=clock)
    b = LeaderElection(store, "b", clock=clock)
    assert a.step()
    a.release()
    assert a.lost.is_set()
    assert b.step()


def test_same_holder_resumes_at_once(store: LocalStore) -> None:
    """A restarted embedded control plane uses the same holder name and leads at once."""
    clock = Clock()
    assert LeaderElection(store, "embedded@host", clock=clock).step()
    assert LeaderElection(store, "embedded@host", clock=clock).step()


def test_store_failure_means_not_leading(store: LocalStore) -> None:
    election = LeaderElection(store, "a", clock=Clock())
    assert election.step()
    store.close()
    assert not election.step()
    assert election.lost.is_set()


def test_renewal_must_be_shorter_than_the_lease(store: LocalStore) -> None:
    with pytest.raises(ValueError, match="renew_every_s"):
        LeaderElection(store, "a", duration_s=5, renew_every_s=5)


def _lease_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "tensorfusion.operator.leader_election"
    ]


def test_giving_the_lease_up_is_logged_as_released(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    election = LeaderElection(store, "a", clock=Clock())
    assert election.step()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tensorfusion.operator.leader_election"):
        election.release()
        election.release()  # a second release has nothing left to give up
    assert _lease_records(caplog) == [
        (logging.INFO, "a released the lease tensor-fusion-controller")
    ]
    assert store.lease_holder("tensor-fusion-controller", now=Clock().now) is None


def test_a_lease_taken_by_another_holder_is_a_warning(
    store: LocalStore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    a = LeaderElection(store, "a", duration_s=15, renew_every_s=5, clock=clock)
    b = LeaderElection(store, "b", duration_s=15, renew_every_s=5, clock=clock)
    assert a.step()
    clock.now += 16  # a could not renew in time
    assert b.step()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tensorfusion.operator.leader_election"):
        assert not a.step()
        a.release()  # nothing is held any more: nothing to give up or log
    assert _lease_records(caplog) == [
        (logging.WARNING, "a lost the lease tensor-fusion-controller")
    ]
    assert store.lease_holder("tensor-fusion-controller", now=clock.now) == "b"


def test_a_release_the_store_refuses_still_ends_leadership(store: LocalStore) -> None:
    election = LeaderElection(store, "a", clock=Clock())
    assert election.step()
    store.close()
    with pytest.raises(StoreError):
        election.release()
    assert not election.is_leader.is_set()
    assert election.lost.is_set()
