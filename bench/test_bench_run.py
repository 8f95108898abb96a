"""`tensor-fusion run`'s round trip: ask the control plane for a slice over HTTP, start a
trivial command under the shim, release the slice when it exits; against starting the same
command bare, measured in the same run. Run with `python -m pytest bench/test_bench_run.py
--benchmark-only`; the figures are printed at the end (see conftest.py)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from tensorfusion.client.api_client import ApiClient
from tensorfusion.client.run_command import run
from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.app import create_app
from tensorfusion.server.runner import start_in_thread
from tensorfusion.server.settings import ServerSettings
from tensorfusion.server.worker_requests import WorkerCreate

COMMAND = ["true"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    root = tmp_path_factory.mktemp("run")
    fleet = root / "fleet.yaml"
    fleet.write_text(generate_fleet(nodes=4, gpus_per_node=8, model="H100").to_yaml())
    plane = ControlPlane(ControlPlaneConfig(state_dir=root / "state", fleet=Path(fleet)))
    plane.start()
    try:
        app = create_app(plane, ServerSettings(token=plane.token))
        with start_in_thread(app) as server:
            yield ApiClient(server.url, plane.token)
    finally:
        plane.stop()


def _median_s(command: Callable[[], object], rounds: int = 30) -> float:
    """The bare baseline, timed in the same run as the benchmark."""
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        command()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def test_run_round_trip(
    benchmark: BenchmarkFixture, client: ApiClient, record_figure: Callable[[str], None]
) -> None:
    slice_request = WorkerCreate(tflops_request="10", vram_request="1Gi")
    bare = _median_s(lambda: subprocess.run(COMMAND, check=True))
    status = benchmark.pedantic(
        lambda: run(client, slice_request, COMMAND), rounds=30, warmup_rounds=2
    )
    assert status == 0
    if benchmark.stats is not None:
        ours = benchmark.stats.stats.median
        record_figure(
            f"run round trip (allocate over HTTP, start `true` under the shim, release): "
            f"{ours * 1e3:.1f} ms median; starting `true` bare: {bare * 1e3:.2f} ms "
            f"({ours / bare:.0f}x)"
        )
