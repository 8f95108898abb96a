"""The shim's fast path for launches under a limit that does not bind, on the mock driver: while
the bucket holds more than its reserve, launches spend a grant at their site's estimate without
recording an event pair each; where the limit sets the pace every launch is measured again, and
a process that spent its burst on the fast path is still held to its share.

The child is test_shim_pacing_charge's (one command per stdin line); the mock counts the events
a process records, and the program records none itself, so the count is the shim's: two per
measured launch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.native.test_shim import child_env
from tests.native.test_shim_pacing_charge import US, Child, paced

# Bucket refills, stalls and pacing all run on the clock.
pytestmark = pytest.mark.timing


def test_a_limit_that_does_not_bind_measures_few_launches(mockcuda: Any, tmp_path: Path) -> None:
    child = Child(child_env(mockcuda, tmp_path, TF_TFLOPS_LIMIT="90", TF_GPU_PEAK_TFLOPS="100"))
    child.launch("sleep_ns_0")  # measured: the site's first launch
    child.command("sync")
    child.command("sleep 0.1")  # the bucket fills far past its reserve
    launches = 20_000
    child.launch("sleep_ns_0", count=launches)
    child.command("sync")
    records = int(child.command("records"))
    assert child.close() == ""
    # Measured: one launch per clock tick and one in 1024 per thread, not every launch.
    assert 0 < records < 2 * launches // 20


def test_a_binding_limit_measures_every_launch(mockcuda: Any, tmp_path: Path) -> None:
    child, _ = paced(mockcuda, tmp_path, tflops=30.0)
    launches = 100
    for _ in range(launches):
        child.launch("sleep_us_200")
        child.command("sync")
    records = int(child.command("records"))
    assert child.close() == ""
    # The bucket never fills past its reserve while the pace is set (a stall of tens of ms on a
    # loaded machine could let one launch through on a grant).
    assert 2 * launches * 0.9 <= records <= 2 * launches


def test_a_burst_spent_on_the_fast_path_is_still_paced(mockcuda: Any, tmp_path: Path) -> None:
    child, region = paced(mockcuda, tmp_path, tflops=30.0)
    child.launch("sleep_us_200")
    child.command("sync")
    child.command("sleep 0.3")  # a full bucket: 30 ms, three quarters of it grantable
    launches = 500  # 100 ms of work queued back to back, far past the burst
    child.launch("sleep_us_200", count=launches)
    child.command("sync")
    counters = child.slot(region)
    assert child.close() == ""
    assert counters["launches"] == launches + 1
    assert counters["throttled_launches"] > 0


def test_fast_path_launches_count_their_busy_time(mockcuda: Any, tmp_path: Path) -> None:
    child, region = paced(mockcuda, tmp_path, tflops=90.0)
    child.launch("sleep_us_200")
    child.command("sync")
    child.command("sleep 0.1")
    launches = 50  # 10 ms of work: well within the burst, mostly on the fast path
    for _ in range(launches):
        child.launch("sleep_us_200")
        child.command("sync")
    records = int(child.command("records"))
    counters = child.slot(region)
    assert child.close() == ""
    assert records < 2 * (launches + 1)  # some went on the fast path
    # A fast-path launch counts its site's estimate (200 us), never the larger chunk it takes
    # from the grant; a measured one its measurement, collected at the latest by the sync.
    assert counters["busy_ns"] == (launches + 1) * 200 * US
