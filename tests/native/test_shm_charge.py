"""Charging, crediting and counters within one process; membership rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tensorfusion import _native
from tensorfusion._native import ShmRegion
from tensorfusion.shm_region import snapshot
from tests.native.test_shm_layout import create_region


@pytest.fixture
def region(tmp_path: Path) -> ShmRegion:
    return create_region(tmp_path / "region", vram_limit=1000)


def test_charges_fill_the_limit_exactly(region: ShmRegion) -> None:
    member = region.join()
    assert region.try_charge(member, "device", 600)
    assert region.try_charge(member, "managed", 300)
    assert not region.try_charge(member, "array", 101)
    assert region.try_charge(member, "vmm", 100)
    assert not region.try_charge(member, "device", 1)
    snap = snapshot(region)
    assert snap.total_bytes == 1000
    assert snap.slots[0].bytes_by_kind == {"device": 600, "managed": 300, "array": 0, "vmm": 100}


def test_zero_bytes_always_fit(region: ShmRegion) -> None:
    member = region.join()
    assert region.try_charge(member, "device", 1000)
    assert region.try_charge(member, "device", 0)


def test_a_charge_larger_than_the_limit_does_not_wrap(region: ShmRegion) -> None:
    member = region.join()
    assert region.try_charge(member, "device", 10)
    assert not region.try_charge(member, "device", 2**64 - 5)
    assert region.snapshot()["total_bytes"] == 10


def test_credit_returns_bytes_exactly(region: ShmRegion) -> None:
    member = region.join()
    region.try_charge(member, "device", 700)
    region.credit(member, "device", 300)
    assert region.try_charge(member, "vmm", 600)
    region.credit(member, "device", 400)
    region.credit(member, "vmm", 600)
    assert region.snapshot()["total_bytes"] == 0


def test_credit_more_than_held_of_that_kind_is_refused(region: ShmRegion) -> None:
    member = region.join()
    region.try_charge(member, "device", 100)
    with pytest.raises(ValueError, match="nbytes: more than the slot holds of kind managed"):
        region.credit(member, "managed", 1)
    with pytest.raises(ValueError, match="kind device"):
        region.credit(member, "device", 101)
    assert region.snapshot()["total_bytes"] == 100


def test_lowering_the_limit_refuses_new_charges_only(region: ShmRegion) -> None:
    member = region.join()
    region.try_charge(member, "device", 800)
    region.set_limits(vram_limit=500, tflops_limit=1.0, tflops_request=1.0, gpu_peak_tflops=2.0)
    assert not region.try_charge(member, "device", 1)
    region.credit(member, "device", 400)
    assert region.try_charge(member, "device", 100)
    assert region.snapshot()["total_bytes"] == 500


def test_members_share_one_limit(region: ShmRegion) -> None:
    first, second = region.join(), region.join()
    assert first.index != second.index
    assert region.try_charge(first, "device", 900)
    assert not region.try_charge(second, "device", 101)
    assert region.try_charge(second, "device", 100)


def test_leave_returns_the_slot_and_its_bytes(region: ShmRegion) -> None:
    member = region.join()
    region.try_charge(member, "device", 400)
    region.try_charge(member, "array", 100)
    region.leave(member)
    snap = region.snapshot()
    assert (snap["total_bytes"], snap["members"], snap["slots"]) == (0, 0, [])
    assert region.join().index == member.index


def test_a_left_slot_cannot_be_used(region: ShmRegion) -> None:
    member = region.join()
    region.leave(member)
    reused = region.join()
    assert reused.index == member.index
    for call in (
        lambda: region.try_charge(member, "device", 1),
        lambda: region.credit(member, "device", 0),
        lambda: region.add(member, "launches", 1),
        lambda: region.leave(member),
    ):
        with pytest.raises(ValueError, match="slot: no longer held"):
            call()
    assert region.snapshot()["members"] == 1


def test_counters_add_up(region: ShmRegion) -> None:
    member = region.join()
    region.add(member, "launches", 5)
    region.add(member, "launches", 2)
    region.add(member, "throttled_launches", 1)
    region.add(member, "busy_ns", 2**40)
    region.add(member, "pages_evicted", 3)
    region.add(member, "pages_resumed", 4)
    slot = snapshot(region).slots[0]
    assert (slot.launches, slot.throttled_launches, slot.busy_ns) == (7, 1, 2**40)
    assert (slot.pages_evicted, slot.pages_resumed) == (3, 4)


def test_a_new_occupant_starts_from_zero(region: ShmRegion) -> None:
    member = region.join()
    region.add(member, "launches", 5)
    region.leave(member)
    assert snapshot(ShmRegion.open(region.path)).slots == ()
    again = region.join()
    fresh = snapshot(region).slots[0]
    assert (fresh.index, fresh.launches, fresh.total_bytes) == (again.index, 0, 0)


def test_a_full_region_refuses_to_join(tmp_path: Path) -> None:
    region = create_region(tmp_path / "region", slots=2)
    region.join()
    region.join()
    with pytest.raises(OSError, match="every slot is held by a live process") as raised:
        region.join()
    assert raised.value.filename == region.path


def test_snapshot_reports_the_caller(region: ShmRegion) -> None:
    member = region.join()
    slot = snapshot(region).slots[0]
    assert (slot.index, slot.pid) == (member.index, os.getpid())
    assert slot.start_token > 0


@pytest.mark.parametrize(
    ("kind", "nbytes", "error", "message"),
    [
        ("host", 1, ValueError, "kind: unknown kind 'host'; valid: device, managed, array, vmm"),
        ("Device", 1, ValueError, "unknown kind 'Device'"),
        ("device", -1, ValueError, "nbytes: must be from 0 to 2\\*\\*64 - 1, got -1"),
        ("device", 2**64, ValueError, "nbytes: must be from 0"),
        ("device", 1.5, TypeError, "nbytes: expected an int, got float"),
        ("device", None, TypeError, "nbytes: expected an int, got NoneType"),
    ],
)
def test_charge_and_credit_reject_bad_arguments(
    region: ShmRegion, kind: str, nbytes: object, error: type[Exception], message: str
) -> None:
    member = region.join()
    with pytest.raises(error, match=message):
        region.try_charge(member, kind, nbytes)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        region.credit(member, kind, nbytes)  # type: ignore[arg-type]
    assert region.snapshot()["total_bytes"] == 0


@pytest.mark.parametrize(
    ("counter", "amount", "message"),
    [
        ("flops", 1, "counter: unknown counter 'flops'; valid: launches, throttled_launches"),
        ("launches", -3, "amount: must be from 0"),
    ],
)
def test_add_rejects_bad_arguments(
    region: ShmRegion, counter: str, amount: int, message: str
) -> None:
    member = region.join()
    with pytest.raises(ValueError, match=message):
        region.add(member, counter, amount)


def test_bench_helpers_check_their_arguments(region: ShmRegion) -> None:
    member = region.join()
    region.charge_credit_loop(member, 100)
    assert region.snapshot()["total_bytes"] == 0
    with pytest.raises(ValueError, match="iterations: must be >= 0, got -1"):
        region.charge_credit_loop(member, -1)
    with pytest.raises(ValueError, match="iterations: must be >= 0, got -1"):
        _native.shm_noop_loop(-1)
