"""enabled-replicas counts over the local store (the store of embedded mode, in memory) with a
hand-driven clock: N slots per controller and no more, also when admissions race; slots of
pods that never came, were deleted or finished are taken back after the grace, those of live
pods never; a count left by an earlier controller of the same name is taken over; pods without
a controller are not counted; dry runs and refusals write nothing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tensorfusion.api.annotations import ENABLED_LABEL, ENABLED_REPLICAS, REPLICA_SLOT_LABEL
from tensorfusion.errors import ConflictError, StoreError, UnavailableError
from tensorfusion.store.local import LocalStore
from tensorfusion.store.objects import JsonObject
from tensorfusion.webhook.replica_slots import (
    COUNT_PREFIX,
    MAX_ATTEMPTS,
    ReplicaSlots,
    controller_of,
)

from .pods import owned_by, tf_pod

NAMESPACE = "ns"
COUNT = f"{COUNT_PREFIX}replicaset-rs"
GRACE_S = 60.0
START = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> Iterator[LocalStore]:
    with LocalStore(":memory:") as local:
        yield local


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slots(store: LocalStore, clock: Clock) -> ReplicaSlots:
    return ReplicaSlots(store, grace_s=GRACE_S, clock=clock)


def replica(name: str = "rs", uid: str = "rs-uid") -> dict[str, Any]:
    return owned_by(tf_pod(), name, uid)


def claim(slots: ReplicaSlots, limit: int, *, dry_run: bool = False) -> dict[str, str] | None:
    return slots.claim(replica(), NAMESPACE, limit, dry_run=dry_run)


def store_pod(store: LocalStore, name: str, labels: Mapping[str, str], **parts: Any) -> None:
    """A converted replica as the API server stores it, holding the slot in `labels`."""
    pod = replica()
    pod["metadata"].update(name=name, namespace=NAMESPACE)
    pod["metadata"]["labels"] = {ENABLED_LABEL: "true", **labels}
    pod["metadata"].update(parts.pop("metadata", {}))
    store.create({**pod, **parts})


def tokens(store: LocalStore) -> set[str]:
    return set(store.get("ConfigMap", COUNT, NAMESPACE)["data"])


def test_n_replicas_get_a_slot_each_and_the_next_none(
    store: LocalStore, slots: ReplicaSlots
) -> None:
    taken = [claim(slots, 3) for _ in range(3)]
    assert all(labels is not None and set(labels) == {REPLICA_SLOT_LABEL} for labels in taken)
    assert tokens(store) == {labels[REPLICA_SLOT_LABEL] for labels in taken if labels}
    count = store.get("ConfigMap", COUNT, NAMESPACE)
    (owner,) = count["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("ReplicaSet", "rs", "rs-uid")
    assert claim(slots, 3) is None
    assert len(tokens(store)) == 3


def test_zero_converts_none_and_reads_nothing(slots: ReplicaSlots, store: LocalStore) -> None:
    assert claim(slots, 0) is None
    assert store.list("ConfigMap") == []


def test_a_negative_count_is_refused_naming_the_annotation(slots: ReplicaSlots) -> None:
    with pytest.raises(ValueError, match=f"^{ENABLED_REPLICAS}: must be >= 0, got -1$"):
        claim(slots, -1)


class RacingStore(LocalStore):
    """Before each of the first `races` updates, another admission takes a slot of the same
    count: the update then carries a stale resourceVersion, as when two webhook replicas
    read the count at once."""

    def __init__(self, races: int) -> None:
        super().__init__(":memory:")
        self.races = races
        self.rival = ReplicaSlots(self)

    def update(self, obj: Mapping[str, object]) -> JsonObject:
        if self.races:
            self.races -= 1
            assert self.rival.claim(replica(), NAMESPACE, 99, dry_run=False)
        return super().update(obj)


def test_a_slot_lost_to_a_racing_admission_is_sought_again() -> None:
    with RacingStore(races=1) as store:
        # One slot before the race, so that the next admission updates (not creates) the count.
        assert claim(ReplicaSlots(store), 3)
        labels = claim(ReplicaSlots(store), 3)
        assert labels is not None
        assert labels[REPLICA_SLOT_LABEL] in tokens(store)
        assert len(tokens(store)) == 3


def test_the_last_slot_goes_to_one_of_two_racing_admissions() -> None:
    with RacingStore(races=1) as store:
        assert claim(ReplicaSlots(store), 2)
        # The rival takes the last slot while this admission updates: it finds the count full.
        assert claim(ReplicaSlots(store), 2) is None
        assert len(tokens(store)) == 2


class ConflictingStore(LocalStore):
    def update(self, obj: Mapping[str, object]) -> JsonObject:
        raise ConflictError("ConfigMap ns/count: the object has been modified")


def test_a_count_that_keeps_changing_refuses_the_pod_and_writes_nothing() -> None:
    with ConflictingStore(":memory:") as store:
        assert claim(ReplicaSlots(store), 3)
        before = store.get("ConfigMap", COUNT, NAMESPACE)
        with pytest.raises(UnavailableError, match=f"^{ENABLED_REPLICAS}: .*{MAX_ATTEMPTS}"):
            claim(ReplicaSlots(store), 3)
        assert store.get("ConfigMap", COUNT, NAMESPACE) == before


class UnreachableStore(LocalStore):
    def get(self, kind: str, name: str, namespace: str | None = None) -> JsonObject:
        raise StoreError("the API server is unreachable")


def test_a_count_that_cannot_be_read_is_unavailable_naming_the_annotation() -> None:
    with UnreachableStore(":memory:") as store:
        with pytest.raises(UnavailableError) as raised:
            claim(ReplicaSlots(store), 3)
        message = str(raised.value)
        assert message.startswith(f"{ENABLED_REPLICAS}: cannot count the converted replicas of ")
        assert f"ReplicaSet {NAMESPACE}/rs (ConfigMap {COUNT})" in message
        assert message.endswith("the API server is unreachable")
        assert store.list("ConfigMap") == []


def test_a_slot_whose_pod_never_came_is_taken_back_after_the_grace(
    store: LocalStore, slots: ReplicaSlots, clock: Clock
) -> None:
    ghost = claim(slots, 1)
    assert ghost is not None
    clock.now += GRACE_S - 0.01
    assert claim(slots, 1) is None  # the pod may still be on its way
    clock.now += 0.01
    labels = claim(slots, 1)
    assert labels is not None
    assert tokens(store) == {labels[REPLICA_SLOT_LABEL]}


def test_a_stored_pod_keeps_its_slot_past_the_grace(
    store: LocalStore, slots: ReplicaSlots, clock: Clock
) -> None:
    held = claim(slots, 1)
    assert held is not None
    store_pod(store, "held", held)
    clock.now += 10 * GRACE_S
    assert claim(slots, 1) is None
    assert tokens(store) == set(held.values())


@pytest.mark.parametrize(
    "parts",
    [
        {"metadata": {"deletionTimestamp": "2023-11-14T22:13:20Z"}},
        {"status": {"phase": "Succeeded"}},
        {"status": {"phase": "Failed"}},
    ],
    ids=["being-deleted", "succeeded", "failed"],
)
def test_a_pod_being_deleted_or_finished_frees_its_slot_after_the_grace(
    store: LocalStore, slots: ReplicaSlots, clock: Clock, parts: dict[str, Any]
) -> None:
    gone = claim(slots, 1)
    assert gone is not None
    store_pod(store, "gone", gone, **parts)
    clock.now += GRACE_S
    labels = claim(slots, 1)
    assert labels is not None
    assert tokens(store) == set(labels.values())


def test_slots_are_taken_back_only_when_the_count_is_full(
    store: LocalStore, slots: ReplicaSlots, clock: Clock
) -> None:
    first = claim(slots, 2)
    assert first is not None
    clock.now += GRACE_S
    # Not full: the slot of the pod that never came stays until a full count needs it.
    second = claim(slots, 2)
    assert second is not None
    assert tokens(store) == {*first.values(), *second.values()}


def test_a_count_of_an_earlier_controller_of_the_same_name_is_taken_over(
    store: LocalStore, slots: ReplicaSlots
) -> None:
    assert slots.claim(replica(uid="old-uid"), NAMESPACE, 1, dry_run=False)
    labels = claim(slots, 1)
    assert labels is not None
    count = store.get("ConfigMap", COUNT, NAMESPACE)
    assert set(count["data"]) == set(labels.values())
    assert [ref["uid"] for ref in count["metadata"]["ownerReferences"]] == ["rs-uid"]


def test_a_controller_name_too_long_for_a_count_name_gets_a_digest(
    store: LocalStore, slots: ReplicaSlots
) -> None:
    long_name = "r" * 250
    labels = slots.claim(replica(name=long_name), NAMESPACE, 1, dry_run=False)
    assert labels is not None
    (count,) = store.list("ConfigMap", NAMESPACE)
    name = count["metadata"]["name"]
    assert name.startswith(COUNT_PREFIX)
    assert len(name) == len(COUNT_PREFIX) + 32
    assert long_name not in name
    assert set(count["data"]) == set(labels.values())
    # The same controller finds the same count.
    assert slots.claim(replica(name=long_name), NAMESPACE, 1, dry_run=False) is None


@pytest.mark.parametrize(
    "references",
    [
        None,
        [],
        [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}],
        [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True}],
        "not-a-list",
    ],
    ids=["none", "empty", "not-controller", "no-uid", "malformed"],
)
def test_a_pod_without_a_controller_is_converted_uncounted(
    store: LocalStore, slots: ReplicaSlots, references: object
) -> None:
    pod = tf_pod()
    pod["metadata"]["ownerReferences"] = references
    assert controller_of(pod) is None
    assert slots.claim(pod, NAMESPACE, 1, dry_run=False) == {}
    assert slots.claim(pod, NAMESPACE, 1, dry_run=False) == {}
    assert store.list("ConfigMap") == []


def test_a_dry_run_decides_alike_and_writes_nothing(
    store: LocalStore, slots: ReplicaSlots, clock: Clock
) -> None:
    assert claim(slots, 1, dry_run=True)
    assert store.list("ConfigMap") == []
    ghost = claim(slots, 1)
    assert ghost is not None
    before = store.get("ConfigMap", COUNT, NAMESPACE)
    assert claim(slots, 1, dry_run=True) is None
    clock.now += GRACE_S
    # It would take the slot back, but does not write that.
    assert claim(slots, 1, dry_run=True)
    assert store.get("ConfigMap", COUNT, NAMESPACE) == before
