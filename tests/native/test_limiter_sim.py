"""The limiter against the simulated GPU timeline: achieved busy shares for one and two
workers, mixed kernel sizes, wrong estimates, a rate moved at runtime, and the timeline's own
input checks. Tolerances are looser than the bench's targets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorfusion.errors import ConfigError
from tensorfusion.limiter_sim import WorkerSpec, simulate

S = 1_000_000_000
MS = 1_000_000


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_one_worker_holds_its_share(share: float) -> None:
    (result,) = simulate([WorkerSpec(share)], 4 * S, warmup_ns=S)
    assert result.share == pytest.approx(share, abs=0.03)
    assert result.counters["throttled"] > 0


def test_an_unlimited_worker_keeps_the_gpu_busy() -> None:
    (result,) = simulate([WorkerSpec(1.0)], 2 * S, warmup_ns=S)
    assert result.share == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("kernel_ns", [500_000, 2 * MS, 8 * MS])
def test_two_workers_converge_without_oscillating(kernel_ns: int) -> None:
    # The same split whatever the kernel size (a faster GPU runs shorter kernels): the gain
    # does not depend on the device, and every half second stays on target.
    specs = [WorkerSpec(0.3, kernels_ns=(kernel_ns,)), WorkerSpec(0.7, kernels_ns=(kernel_ns,))]
    low, high = simulate(specs, 5 * S, warmup_ns=S, interval_ns=S // 2)
    assert all(share == pytest.approx(0.3, abs=0.04) for share in low.shares)
    assert all(share == pytest.approx(0.7, abs=0.04) for share in high.shares)


def test_an_unlimited_neighbour_takes_only_the_rest() -> None:
    limited, greedy = simulate([WorkerSpec(0.3), WorkerSpec(1.0)], 4 * S, warmup_ns=S)
    assert limited.share == pytest.approx(0.3, abs=0.03)
    assert greedy.share == pytest.approx(0.7, abs=0.03)


@pytest.mark.parametrize(
    "variant",
    [
        {"kernels_ns": (20_000, 2 * MS)},  # mixed kernel sizes
        {"estimate_ratio": 0.5},  # the real busy time is twice the estimate
        {"estimate_ratio": 2.0},  # and half of it
    ],
    ids=["mixed-kernels", "busy-2x-estimate", "busy-half-estimate"],
)
def test_a_split_survives_mixed_kernels_and_wrong_estimates(variant: dict[str, Any]) -> None:
    low, high = simulate(
        [WorkerSpec(0.3, **variant), WorkerSpec(0.7, **variant)], 4 * S, warmup_ns=S
    )
    assert low.share == pytest.approx(0.3, abs=0.03)
    assert high.share == pytest.approx(0.7, abs=0.03)


def test_queued_work_stays_near_the_in_flight_bound() -> None:
    (result,) = simulate(
        [WorkerSpec(0.9, kernels_ns=(1 * MS,), max_in_flight_ns=10 * MS)], 2 * S, warmup_ns=S
    )
    # Estimates are exact: at most the bound plus the launch that found room below it.
    assert result.max_queued_ns <= 11 * MS


def test_the_stream_depth_blocks_a_worker() -> None:
    # Estimates far below the real cost let the limiter admit faster than the GPU runs.
    spec = WorkerSpec(
        1.0, kernels_ns=(1 * MS,), estimate_ratio=0.001, max_in_flight_ns=S, stream_depth=3
    )
    (result,) = simulate([spec], S)
    assert result.max_queued_ns == 3 * MS


def test_a_share_moved_at_runtime_takes_effect() -> None:
    spec = WorkerSpec(0.2, share_changes=((3 * S, 0.6),))
    (result,) = simulate([spec], 5 * S, warmup_ns=S, interval_ns=S)
    assert result.shares[:2] == pytest.approx([0.2, 0.2], abs=0.03)
    assert result.shares[2:] == pytest.approx([0.6, 0.6], abs=0.03)


def test_runs_are_deterministic() -> None:
    specs = [WorkerSpec(0.3, kernels_ns=(20_000, 2 * MS)), WorkerSpec(0.6)]
    assert simulate(specs, S) == simulate(specs, S)


@settings(max_examples=15, deadline=None)
@given(
    share=st.floats(0.05, 1.0),
    kernels=st.lists(st.integers(10_000, 5 * MS), min_size=1, max_size=4),
    ratio=st.floats(0.25, 4.0),
)
def test_never_more_than_the_share_plus_the_burst(
    share: float, kernels: list[int], ratio: float
) -> None:
    spec = WorkerSpec(share, kernels_ns=tuple(kernels), estimate_ratio=ratio)
    (result,) = simulate([spec], S)
    # From t=0 the worker may use its rate, its starting window, one kernel of debt, and the
    # work it has run but not yet reported (the in-flight bound is in estimated ns).
    unreported = spec.max_in_flight_ns / min(ratio, 1.0) + max(kernels)
    assert result.share * S <= share * S + share * spec.window_ns + max(kernels) + unreported


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"kernels_ns": ()}, "kernels_ns"),
        ({"kernels_ns": (5, 0)}, "kernels_ns"),
        ({"estimate_ratio": 0.0}, "estimate_ratio"),
        ({"estimate_ratio": float("nan")}, "estimate_ratio"),
        ({"stream_depth": 0}, "stream_depth"),
        ({"launch_gap_ns": 0}, "launch_gap_ns"),
        ({"share_changes": ((-1, 0.5),)}, "share_changes"),
    ],
)
def test_bad_worker_specs(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        WorkerSpec(0.5, **spec)  # type: ignore[arg-type]


def test_a_bad_share_is_refused_by_the_limiter() -> None:
    with pytest.raises(ValueError, match=r"^share: "):
        simulate([WorkerSpec(1.5)], S)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"workers": []}, "workers"),
        ({"warmup_ns": S}, "warmup_ns"),
        ({"warmup_ns": -1}, "warmup_ns"),
        ({"interval_ns": 0}, "interval_ns"),
        ({"interval_ns": 3 * MS}, "interval_ns"),
    ],
)
def test_bad_simulation_arguments(arguments: dict[str, object], field: str) -> None:
    call: dict[str, object] = {"workers": [WorkerSpec(0.5)], "duration_ns": S, **arguments}
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        simulate(**call)  # type: ignore[arg-type]
