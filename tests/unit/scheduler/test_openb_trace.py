"""Traces in the openb format: reading (every bad value named by file, row and column), the
fleet and pods they become, the inflation protocol, and the pods placed by the scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import pytest

from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    GPU_COUNT,
    GPU_MODEL,
    VRAM_LIMIT,
    VRAM_REQUEST,
)
from tensorfusion.api.scheduler_config import SCHEDULER_NAME
from tensorfusion.errors import ConfigError, FleetError
from tensorfusion.scheduler.cluster_state import ClusterState
from tensorfusion.scheduler.cycle import schedule_one
from tensorfusion.scheduler.fleet import Object, fleet_problems
from tensorfusion.scheduler.gpu_models import GIB, lookup_model
from tensorfusion.scheduler.pod_info import PodInfo
from tensorfusion.scheduler.profile import build_profiles, default_config
from tensorfusion.trace.gpu_specs import lookup_spec
from tensorfusion.trace.openb import DIR_ENV, Trace, TracePod, read_trace, trace_dir
from tensorfusion.trace.replay import (
    PRODUCT_LABEL,
    PodShape,
    fleet_from_trace,
    inflated,
    pod_object,
)

NODES = """sn,cpu_milli,memory_mib,gpu,model
big-0,16000,65536,2,V100M32
small-0,8000,32768,1,T4
"""
POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)
PODS = POD_HEADER + (
    "cpu-only,2000,4096,0,0,,LS,Running,0,10,0\n"
    "quarter,1000,2048,1,250,,BE,Running,1,10,1\n"
    "pair,4000,8192,2,1000,,LS,Pending,2,10,\n"
    "on-t4,1000,2048,1,500,T4,LS,Running,3,10,3\n"
    "either,1000,2048,1,100,T4|V100M32,LS,Running,4,10,4\n"
)


def write_trace(directory: Path, nodes: str = NODES, **pod_lists: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "openb_node_list_gpu_node.csv").write_text(nodes, encoding="utf-8")
    for name, text in (pod_lists or {"default": PODS}).items():
        (directory / f"openb_pod_list_{name}.csv").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
def trace(tmp_path: Path) -> Trace:
    return read_trace(write_trace(tmp_path / "trace"))


def _pods(trace: Trace) -> dict[str, Object]:
    shape = PodShape.of(trace)
    return {pod.name: pod_object(pod, pod.name, shape) for pod in trace.pod_lists["default"]}


def test_reads_nodes_and_pods(trace: Trace) -> None:
    assert [(n.name, n.cpu_milli, n.memory_mib, n.gpus) for n in trace.nodes] == [
        ("big-0", 16000, 65536, 2),
        ("small-0", 8000, 32768, 1),
    ]
    assert [node.model.name if node.model else None for node in trace.nodes] == ["V100M32", "T4"]
    pods = {pod.name: pod for pod in trace.pod_lists["default"]}
    assert pods["pair"].gpu_demand_milli == 2000
    assert [model.name for model in pods["either"].gpu_spec] == ["T4", "V100M32"]
    assert trace.gpu_capacity_milli == 3000


def test_project_models_are_known_by_their_names() -> None:
    t4 = lookup_model("T4")
    assert (lookup_spec("tesla t4").tflops, lookup_spec("T4").vram_bytes) == (
        t4.tflops,
        t4.vram_bytes,
    )


def test_fleet_has_each_gpu_at_its_models_capacity(trace: Trace) -> None:
    fleet = fleet_from_trace(trace, placement="LowLoadFirst")
    assert fleet_problems(list(fleet.documents())) == []
    assert [node["metadata"]["name"] for node in fleet.nodes] == ["big-0", "small-0"]
    assert fleet.nodes[0]["status"]["allocatable"]["cpu"] == "16000m"
    assert fleet.nodes[1]["metadata"]["labels"][PRODUCT_LABEL] == "Tesla-T4"
    state, report = ClusterState.build(fleet)
    assert not report.problems()
    arrays = state.gpus.arrays()
    expected = [lookup_spec("V100M32")] * 2 + [lookup_spec("T4")]
    assert list(arrays.tflops_capacity) == [spec.tflops.milli_value() for spec in expected]
    assert list(arrays.vram_capacity) == [spec.vram_bytes for spec in expected]
    # Nothing is oversold: the virtual capacity is the physical one.
    assert list(arrays.tflops_virtual) == list(arrays.tflops_capacity)
    assert list(arrays.vram_virtual) == list(arrays.vram_capacity)
    assert state.pools["default"].placement == "LowLoadFirst"


def test_pods_ask_their_share_of_a_gpu(trace: Trace) -> None:
    pods = _pods(trace)
    smallest = lookup_spec("T4").vram_bytes
    quarter = pods["quarter"]["metadata"]["annotations"]
    assert quarter[COMPUTE_PERCENT_REQUEST] == quarter[COMPUTE_PERCENT_LIMIT] == "25"
    assert quarter[VRAM_REQUEST] == quarter[VRAM_LIMIT] == str(smallest // 4)
    assert pods["pair"]["metadata"]["annotations"][GPU_COUNT] == "2"
    assert pods["on-t4"]["metadata"]["annotations"][GPU_MODEL] == "T4"
    assert pods["cpu-only"]["metadata"]["annotations"] == {}
    terms = pods["either"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [
        "Tesla-T4",
        "Tesla-V100-SXM2-32GB",
    ]


def test_shares_that_add_up_to_a_gpu_fit_on_one() -> None:
    """In bytes of a 16 GiB card, 47% and 53% are not whole numbers; rounded up, they would
    add up to a byte more than the card."""
    shape = PodShape(smallest_vram=16 * GIB)
    pods = [
        TracePod(name, cpu_milli=0, memory_mib=0, num_gpu=1, gpu_milli=milli, gpu_spec=())
        for name, milli in (("a", 470), ("b", 530))
    ]
    vram = [
        int(pod_object(pod, pod.name, shape)["metadata"]["annotations"][VRAM_REQUEST])
        for pod in pods
    ]
    assert sum(vram) <= 16 * GIB
    assert 16 * GIB - sum(vram) < 2


def test_oversold_requests_are_a_share_of_the_limits(trace: Trace) -> None:
    shape = PodShape.of(trace, Fraction(1, 3))
    quarter = next(pod for pod in trace.pod_lists["default"] if pod.name == "quarter")
    annotations = pod_object(quarter, "q", shape)["metadata"]["annotations"]
    # 25% / 3 rounded up at the fourth decimal; never less than was asked.
    assert annotations[COMPUTE_PERCENT_REQUEST] == "8.3334"
    assert annotations[COMPUTE_PERCENT_LIMIT] == "25"
    # A twelfth of the smallest card (16 GiB), in whole bytes, rounded down.
    assert int(annotations[VRAM_REQUEST]) == 16 * GIB // 12


def test_the_scheduler_places_every_pod_where_it_may_run(trace: Trace) -> None:
    state, _ = ClusterState.build(fleet_from_trace(trace))
    bound: dict[str, str] = {}

    def binder(pod: PodInfo, node: str, annotations: Mapping[str, str]) -> None:
        bound[pod.name] = node

    profile = build_profiles(default_config(), binder)[SCHEDULER_NAME]
    for pod in _pods(trace).values():
        assert schedule_one(profile, state.view, PodInfo.from_dict(pod)).scheduled
    # The pair takes both V100s, so every slice shares the T4, each its share of the T4.
    assert bound["pair"] == "big-0"
    assert bound["quarter"] == bound["on-t4"] == bound["either"] == "small-0"
    arrays = state.gpus.arrays()
    t4 = lookup_spec("T4").tflops.milli_value()
    assert list(arrays.tflops_requested) == [
        *arrays.tflops_capacity[:2],
        sum(t4 * percent // 100 for percent in (25, 50, 10)),
    ]


def test_inflation_shuffles_then_tops_up_until_the_demand_arrives(trace: Trace) -> None:
    pods = trace.pod_lists["default"]
    until = Fraction(3)
    drawn = list(inflated(pods, trace.gpu_capacity_milli, until, seed=42))
    assert sorted(pod.name for pod in drawn[: len(pods)]) == sorted(pod.name for pod in pods)
    demands = [pod.gpu_demand_milli for pod in drawn]
    target = trace.gpu_capacity_milli * until
    assert sum(demands) >= target > sum(demands[:-1])
    assert drawn == list(inflated(pods, trace.gpu_capacity_milli, until, seed=42))
    orders = {
        tuple(pod.name for pod in inflated(pods, trace.gpu_capacity_milli, until, seed))
        for seed in range(42, 52)
    }
    assert len(orders) > 1


def test_inflation_needs_gpu_demand(tmp_path: Path) -> None:
    cpu_only = POD_HEADER + "a,1000,1024,0,0,,LS,Running,0,1,0\n"
    trace = read_trace(write_trace(tmp_path, default=cpu_only))
    with pytest.raises(ValueError, match="no GPU"):
        next(inflated(trace.pod_lists["default"], trace.gpu_capacity_milli, Fraction(1), 42))


def test_reads_only_the_lists_asked_for(tmp_path: Path) -> None:
    write_trace(tmp_path, default=PODS, other=POD_HEADER)
    assert list(read_trace(tmp_path, ("other",)).pod_lists) == ["other"]
    assert list(read_trace(tmp_path).pod_lists) == ["default", "other"]
    with pytest.raises(ConfigError, match=r"no pod list 'missing'.*known: default, other"):
        read_trace(tmp_path, ("missing",))


def test_directory_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DIR_ENV, str(tmp_path))
    assert trace_dir() == tmp_path
    assert trace_dir(default=tmp_path / "elsewhere") == tmp_path
    assert trace_dir(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv(DIR_ENV)
    assert trace_dir(default=tmp_path / "elsewhere") == tmp_path / "elsewhere"
    with pytest.raises(ConfigError, match=DIR_ENV):
        trace_dir()


NODE_FILE = "openb_node_list_gpu_node.csv"
POD_FILE = "openb_pod_list_default.csv"


@pytest.mark.parametrize(
    ("nodes", "pods", "expected"),
    [
        (NODES.replace("model", "modle"), PODS, (NODE_FILE, "modle", "unknown column")),
        (NODES.replace(",model", ""), PODS, (NODE_FILE, "model", "missing column")),
        (NODES + "x-0,8000,1024,1,H800\n", PODS, (NODE_FILE, "model", "unknown GPU model 'H800'")),
        (NODES + "x-0,8000,1024,1,\n", PODS, (NODE_FILE, "model", "must name one GPU model")),
        (NODES + "x-0,8000,1024,two,T4\n", PODS, (NODE_FILE, "gpu", "got 'two'")),
        (NODES + "x-0,8000,1024,17,T4\n", PODS, (NODE_FILE, "gpu", "from 0 to 16")),
        (NODES + "x-0,8000,1024,1\n", PODS, (NODE_FILE, "", "has 4 values")),
        (NODES + "big-0,8000,1024,1,T4\n", PODS, (NODE_FILE, "sn", "duplicate name")),
        (NODES + "Big_0,8000,1024,1,T4\n", PODS, (NODE_FILE, "sn", "lower case")),
        (NODES, PODS + "x,1,1,1,1001,,LS,Running,0,1,0\n", (POD_FILE, "gpu_milli", "0 to 1000")),
        (NODES, PODS + "x,1,1,0,500,,LS,Running,0,1,0\n", (POD_FILE, "gpu_milli", "num_gpu is 0")),
        (NODES, PODS + "x,1,1,2,500,,LS,Running,0,1,0\n", (POD_FILE, "gpu_milli", "whole GPUs")),
        (NODES, PODS + "x,1,1,1,500,T4|K80,LS,Running,0,1,0\n", (POD_FILE, "gpu_spec", "'K80'")),
        (NODES, PODS + "x,-1,1,0,0,,LS,Running,0,1,0\n", (POD_FILE, "cpu_milli", "got '-1'")),
        (NODES, PODS + "x,1,1,0,0,,LS,Running,0,soon,0\n", (POD_FILE, "deletion_time", "'soon'")),
    ],
)
def test_bad_input_names_file_row_and_column(
    tmp_path: Path, nodes: str, pods: str, expected: tuple[str, str, str]
) -> None:
    where, column, message = expected
    write_trace(tmp_path, nodes, default=pods)
    with pytest.raises(FleetError) as caught:
        read_trace(tmp_path)
    error = caught.value
    assert error.obj.startswith(str(tmp_path / where))
    assert error.field == column
    assert message in error.message
    rows = (nodes if where == NODE_FILE else pods).count("\n") - 1
    expected_row = "header" if "column" in message else f"row {rows} (line {rows + 1})"
    assert error.obj.endswith(expected_row)


def test_a_directory_needs_one_node_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must hold one openb_node_list"):
        read_trace(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        read_trace(tmp_path / "absent")


def test_a_pool_name_must_be_a_dns_label(trace: Trace) -> None:
    with pytest.raises(ConfigError, match="--pool"):
        fleet_from_trace(trace, pool="Not_A_Label")
