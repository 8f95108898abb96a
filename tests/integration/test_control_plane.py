"""The embedded control plane end to end, in process: the real local store, agent, scheduler
loop and shared regions, on a generated fleet (this machine has no GPUs)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tensorfusion.embedded.control_plane import ControlPlane, ControlPlaneConfig
from tensorfusion.engine.observability import ObservabilityConfig
from tensorfusion.errors import (
    AlreadyExistsError,
    ConfigError,
    FleetError,
    NotFoundError,
    StoreError,
    UnavailableError,
    UnschedulableError,
)
from tensorfusion.scheduler.fleet_generator import generate_fleet
from tensorfusion.server.backend import WorkerRequest

GI = 1 << 30
WAIT_S = 20.0


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(generate_fleet(nodes=2, gpus_per_node=4, model="H100", seed=3).to_yaml())
    return path


def _config(state: Path, fleet: Path | None) -> ControlPlaneConfig:
    return ControlPlaneConfig(state_dir=state, fleet=fleet, agent_interval_s=0.05)


@pytest.fixture
def plane(tmp_path: Path, fleet_file: Path) -> Iterator[ControlPlane]:
    cp = ControlPlane(_config(tmp_path / "state", fleet_file))
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process to stand for a worker's command."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.mark.timing
def test_serves_the_fleet(plane: ControlPlane) -> None:
    assert plane.readiness() == (True, "ready")
    (pool,) = plane.pools()
    assert (pool["nodes"], pool["gpus"], pool["workers"]) == (2, 8, 0)
    assert len(plane.gpus()) == 8
    assert [n["name"] for n in plane.nodes()] == ["node-00000", "node-00001"]
    assert plane.allocation()["allocations"] == {}
    assert plane.workers() == []


@pytest.mark.timing
def test_worker_is_bound_with_its_environment_and_released(plane: ControlPlane) -> None:
    worker = plane.create_worker(
        WorkerRequest("50", "4Gi", tflops_limit="100", pid=os.getpid(), command=("train",))
    )
    assert worker["phase"] == "Running"
    (gpu,) = worker["gpus"]
    env = worker["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == str(worker["gpuIndices"][0])
    assert env["TF_WORKER_NAME"]
    assert Path(env["TF_SHM_PATH_0"]).is_file()
    assert int(env["TF_VRAM_LIMIT_0"]) == 4 * GI
    assert float(env["TF_TFLOPS_LIMIT_0"]) == 100.0
    allocation = plane.allocation()["allocations"][worker["uid"]]
    assert allocation["gpus"] == [gpu]
    (listed,) = plane.workers()
    assert listed["name"] == worker["name"]
    assert listed["pids"] == [os.getpid()]
    assert next(g for g in plane.gpus() if g["name"] == gpu)["allocated"]["tflops"] == 50.0

    assert plane.delete_worker(worker["name"]) == {"released": worker["name"]}
    assert not Path(env["TF_SHM_PATH_0"]).exists()
    _eventually(lambda: plane.allocation()["allocations"] == {})
    assert plane.workers() == []
    with pytest.raises(NotFoundError):
        plane.delete_worker(worker["name"])


@pytest.mark.timing
def test_unschedulable_and_bad_requests_leave_nothing(plane: ControlPlane) -> None:
    with pytest.raises(UnschedulableError) as refused:
        plane.create_worker(WorkerRequest("10", "1Ti", pid=os.getpid()))
    assert refused.value.report["schedulable"] is False
    assert "VRAM" in str(refused.value) or "vram" in str(refused.value).lower()
    with pytest.raises(UnschedulableError):
        plane.create_worker(WorkerRequest("10", "1Gi", pool="nowhere", pid=os.getpid()))
    with pytest.raises(ConfigError) as bad:
        plane.create_worker(WorkerRequest("10", "1Gi", pid=-5))
    assert bad.value.field == "pids"
    with pytest.raises(ConfigError) as bad:
        plane.create_worker(WorkerRequest("ten", "1Gi", pid=os.getpid()))
    assert bad.value.field == "tflopsRequest"
    assert plane.workers() == []
    assert plane.allocation()["allocations"] == {}


@pytest.mark.timing
def test_name_taken_is_refused(plane: ControlPlane) -> None:
    plane.create_worker(WorkerRequest("1", "1Gi", name="job", pid=os.getpid()))
    with pytest.raises(AlreadyExistsError):
        plane.create_worker(WorkerRequest("1", "1Gi", name="job", pid=os.getpid()))
    assert len(plane.workers()) == 1


@pytest.mark.timing
def test_worker_whose_processes_end_is_released(
    plane: ControlPlane, sleeper: subprocess.Popen[bytes]
) -> None:
    worker = plane.create_worker(WorkerRequest("10", "1Gi", pid=sleeper.pid))
    # Runs until its stdin closes: alive when recorded, however slowly this machine runs.
    short = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    plane.add_worker_pids(worker["name"], [short.pid, sleeper.pid, short.pid])
    assert plane.workers()[0]["pids"] == [sleeper.pid, short.pid]  # each recorded once
    assert short.stdin is not None
    short.stdin.close()
    short.wait()
    time.sleep(0.3)
    assert [w["name"] for w in plane.workers()] == [worker["name"]]  # sleeper still lives
    sleeper.kill()
    sleeper.wait()
    _eventually(lambda: plane.workers() == [])
    _eventually(lambda: plane.allocation()["allocations"] == {})


@pytest.mark.timing
def test_pids_of_unknown_worker_or_dead_process(plane: ControlPlane) -> None:
    with pytest.raises(NotFoundError, match="no worker named 'nobody'"):
        plane.add_worker_pids("nobody", [os.getpid()])
    worker = plane.create_worker(WorkerRequest("1", "1Gi", pid=os.getpid()))
    with pytest.raises(ConfigError) as bad:
        plane.add_worker_pids(worker["name"], [0])
    assert bad.value.field == "pids"


@pytest.mark.timing
def test_restart_keeps_live_workers_and_releases_dead_ones(
    tmp_path: Path, fleet_file: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    state = tmp_path / "state"
    first = ControlPlane(_config(state, fleet_file))
    first.start()
    live = first.create_worker(WorkerRequest("10", "2Gi", name="live", pid=sleeper.pid))
    doomed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    first.create_worker(WorkerRequest("10", "2Gi", name="doomed", pid=doomed.pid))
    before = first.allocation()["allocations"][live["uid"]]
    first.stop()
    doomed.kill()
    doomed.wait()

    second = ControlPlane(_config(state, None))  # no fleet: the store already has the GPUs
    second.start()
    try:
        assert [w["name"] for w in second.workers()] == ["live"]
        assert second.allocation()["allocations"] == {live["uid"]: before}
    finally:
        second.stop()


@pytest.mark.timing
def test_second_control_plane_on_one_state_dir_is_refused(
    plane: ControlPlane, fleet_file: Path
) -> None:
    other = ControlPlane(_config(plane.state.paths.root, fleet_file))
    with pytest.raises(ConfigError) as refused:
        other.start()
    assert refused.value.field == "--state-dir"
    assert f"pid {os.getpid()}" in str(refused.value)
    assert plane.readiness()[0]


def test_without_gpus_it_says_how_to_provide_them(tmp_path: Path) -> None:
    plane = ControlPlane(_config(tmp_path / "state", None))
    with pytest.raises(ConfigError) as refused:
        plane.start()
    assert refused.value.field == "--fleet"
    assert "examples/fleets" in str(refused.value)
    with pytest.raises(ConfigError, match="--fleet"):  # not "in use": the lock was released
        ControlPlane(_config(tmp_path / "state", None)).start()


def test_a_plane_that_did_not_start_says_so_everywhere(tmp_path: Path) -> None:
    plane = ControlPlane(_config(tmp_path / "state", None))
    assert plane.readiness() == (False, "the control plane is not started")
    with pytest.raises(ConfigError, match="--fleet"):
        plane.start()  # no GPUs: nothing is left started
    assert plane.readiness() == (False, "the control plane is not started")
    reads: list[Callable[[], object]] = [
        plane.pools,
        plane.allocation,
        plane.workers,
        lambda: plane.token,
        lambda: plane.simulate({}),
        lambda: plane.delete_worker("w"),
    ]
    for read in reads:
        with pytest.raises(UnavailableError, match="not started"):
            read()
    plane.stop()  # nothing to stop: no error


def test_bad_fleet_is_named(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "apiVersion: tensor-fusion.ai/v1\nkind: GPU\nmetadata: {name: g}\n"
        "status: {capacity: {tflops: '-1', vram: 80Gi}}\n"
    )
    with pytest.raises(FleetError, match=r"GPU/g: status\.capacity\.tflops"):
        ControlPlane(_config(tmp_path / "state", fleet)).start()
    with pytest.raises(ConfigError, match="--fleet"):  # nothing was registered, lock released
        ControlPlane(_config(tmp_path / "state", None)).start()


@pytest.mark.timing
def test_metrics_are_recorded_into_the_state_dir(tmp_path: Path, fleet_file: Path) -> None:
    config = ControlPlaneConfig(
        state_dir=tmp_path / "state",
        fleet=fleet_file,
        agent_interval_s=0.05,
        observability=ObservabilityConfig(interval_s=0.1),
    )
    plane = ControlPlane(config)
    plane.start()
    try:
        worker = plane.create_worker(WorkerRequest("50", "4Gi", pid=os.getpid(), name="metered"))
        database = tmp_path / "state" / "metrics.db"

        def recorded(table: str, where: str = "1=1") -> int:
            if not database.exists():
                return 0
            with sqlite3.connect(database) as db:
                try:
                    return int(
                        db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0]
                    )
                except sqlite3.OperationalError:
                    return 0

        _eventually(lambda: recorded("tf_worker_usage", "worker = 'metered'") > 0)
        _eventually(lambda: recorded("tf_node_metrics") > 0)
        _eventually(lambda: recorded("tf_system_metrics") > 0)
        # No NVML here: the GPU rows come from the worker's region, with NVML's columns empty.
        _eventually(lambda: recorded("tf_gpu_usage", "temperature IS NULL") > 0)
        assert worker["name"] == "metered"
    finally:
        plane.stop()


@pytest.mark.timing
def test_a_lease_the_store_will_not_release_still_stops_everything(
    tmp_path: Path, fleet_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = ControlPlane(_config(tmp_path / "state", fleet_file))
    cp.start()
    _eventually(lambda: cp.readiness()[0])
    duties = cp._parts().leader

    def refused(name: str, holder: str) -> None:
        raise StoreError("the store is gone")

    monkeypatch.setattr(duties.election.store, "release_lease", refused)
    threads = list(duties._threads)
    cp.stop()  # no error: leadership ends, the other threads stop, resources close
    assert not duties.election.is_leader.is_set()
    assert threads
    assert not any(thread.is_alive() for thread in threads)
    again = ControlPlane(_config(tmp_path / "state", fleet_file))  # the state dir is free
    again.start()
    again.stop()
