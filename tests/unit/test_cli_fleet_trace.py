"""`tensor-fusion fleet from-trace` as a user runs it, its output read back by `fleet check`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorfusion.cli import EXIT_OK, EXIT_USAGE, main
from tensorfusion.scheduler.fleet import load_fleet
from tests.unit.scheduler.test_openb_trace import PODS, write_trace


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_round_trip_through_fleet_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_trace(tmp_path / "trace")
    output = tmp_path / "fleet.yaml"
    code, out, err = _run(
        capsys, "fleet", "from-trace", str(directory), "--pods", "default", "-o", str(output)
    )
    assert (code, out, err) == (EXIT_OK, "", "")
    code, out, err = _run(capsys, "fleet", "check", str(output))
    assert (code, err) == (EXIT_OK, "")
    pods = PODS.count("\n") - 1
    assert out == f"{output}: OK (2 nodes, 3 GPUs, {pods} pods)\n"
    fleet = load_fleet(output)
    assert [pod["metadata"]["name"] for pod in fleet.pods][:2] == [
        "default-cpu-only",
        "default-quarter",
    ]


def test_without_pods_writes_the_cluster_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "fleet", "from-trace", str(write_trace(tmp_path)), "--pool=x")
    assert (code, err) == (EXIT_OK, "")
    fleet = load_fleet("<stdout>", out)
    assert (len(fleet.nodes), len(fleet.gpus), fleet.pods) == (2, 3, [])
    assert [pool["metadata"]["name"] for pool in fleet.pools] == ["x"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--pods", "nope"), "--pods: no pod list 'nope'"),
        (("--pool", "Bad_Pool"), "--pool: "),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(capsys, "fleet", "from-trace", str(write_trace(tmp_path)), *args)
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith(f"tensor-fusion: {message}")


def test_a_bad_row_exits_2_naming_file_row_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_trace(tmp_path, default=PODS + "x,1,1,1,2000,,LS,Running,0,1,0\n")
    code, out, err = _run(capsys, "fleet", "from-trace", str(tmp_path), "--pods", "default")
    assert (code, out) == (EXIT_USAGE, "")
    rows = PODS.count("\n")
    assert f"openb_pod_list_default.csv: row {rows} (line {rows + 1}): gpu_milli: " in err


def test_placement_gives_the_pool_a_template_of_that_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(write_trace(tmp_path))
    code, out, err = _run(
        capsys, "fleet", "from-trace", directory, "--placement", "FragmentationAware"
    )
    assert (code, err) == (EXIT_OK, "")
    fleet = load_fleet("<stdout>", out)
    (template,) = fleet.templates
    assert template["spec"]["placement"]["mode"] == "FragmentationAware"
    assert fleet.pools[0]["spec"]["schedulingConfigTemplate"] == template["metadata"]["name"]
    code, out, err = _run(capsys, "fleet", "from-trace", directory, "--placement", "Tightest")
    assert (code, out) == (EXIT_USAGE, "")
    assert "--placement: invalid choice: 'Tightest'" in err
