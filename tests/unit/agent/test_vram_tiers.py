"""A worker's VRAM limit split into the parts its pool lets live on the device, in host memory
and on disk."""

from __future__ import annotations

from typing import Any

import pytest

from tensorfusion.agent.vram_tiers import (
    NO_EXPANSION,
    Expansion,
    TierBudget,
    pool_expansion,
    tier_budget,
)

GIB = 1 << 30


def pool(oversubscription: Any) -> dict[str, Any]:
    return {
        "kind": "GPUPool",
        "metadata": {"name": "pool-a"},
        "spec": {"capacityConfig": {"oversubscription": oversubscription}},
    }


def test_each_tier_gets_its_share_of_the_virtual_capacity() -> None:
    # 50% to host memory, 70% to disk: 22 GiB of limit is 10 on the GPU, 5 in RAM, 7 on disk.
    assert tier_budget(22 * GIB, Expansion(50, 70)) == TierBudget(10 * GIB, 5 * GIB, 7 * GIB)


def test_floors_leave_the_remainder_on_disk() -> None:
    # 1000 x 100/300 = 333.3, 1000 x 100/300 = 333.3: the 334th byte goes to disk.
    assert tier_budget(1000, Expansion(100, 100)) == TierBudget(333, 333, 334)


def test_without_disk_the_remainder_stays_on_the_device() -> None:
    assert tier_budget(1000, Expansion(50, 0)) == TierBudget(667, 333, 0)


def test_disk_alone() -> None:
    assert tier_budget(1000, Expansion(0, 25)) == TierBudget(800, 0, 200)


def test_no_expansion_pages_nothing() -> None:
    assert tier_budget(8 * GIB, NO_EXPANSION) == TierBudget(8 * GIB, 0, 0)


@pytest.mark.parametrize("limit", [0, 1, 7, 3 * GIB + 5, 10**15 + 1])
@pytest.mark.parametrize("expansion", [Expansion(50, 70), Expansion(100, 0), Expansion(3, 100)])
def test_the_tiers_always_add_up_to_the_limit(limit: int, expansion: Expansion) -> None:
    budget = tier_budget(limit, expansion)
    assert budget.device + budget.host + budget.disk == limit
    assert min(budget.device, budget.host, budget.disk) >= 0


def test_a_pool_gives_its_percentages() -> None:
    given = pool({"vramExpandToHostMem": 20, "vramExpandToHostDisk": 0})
    assert pool_expansion(given) == Expansion(20, 0)


def test_no_pool_pages_nothing() -> None:
    assert pool_expansion(None) == NO_EXPANSION


def test_fields_a_pool_leaves_out_are_read_as_the_scheduler_reads_them() -> None:
    """The scheduler packs limits against the API's defaults (50% and 70%) for a pool that
    says nothing: the workers it placed need those tiers."""
    assert pool_expansion(pool({"vramExpandToHostMem": 10})) == Expansion(10, 70)
    assert pool_expansion({"kind": "GPUPool", "metadata": {"name": "bare"}}) == Expansion(50, 70)


@pytest.mark.parametrize(
    "oversubscription",
    [
        {"vramExpandToHostMem": 150},
        {"vramExpandToHostDisk": -1},
        {"vramExpandToHostMem": "lots"},
        "everything",
    ],
)
def test_bad_settings_page_nothing(oversubscription: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert pool_expansion(pool(oversubscription)) == NO_EXPANSION
    assert "pool-a" in caplog.text
