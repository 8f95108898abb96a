"""`tensor-fusion fleet generate` and `tensor-fusion fleet check` as a user runs them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from tensorfusion.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from tensorfusion.scheduler.fleet import load_fleet
from tensorfusion.scheduler.fleet_generator import generate_fleet


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_yaml_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "fleet", "generate", "--nodes", "3", "--gpus-per-node", "2", "--model", "h100"
    )
    assert (code, err) == (EXIT_OK, "")
    fleet = load_fleet("<stdout>", out)
    assert len(fleet.nodes) == 3
    assert len(fleet.gpus) == 6
    assert fleet.pods == []
    assert fleet.pools[0]["metadata"]["name"] == "default"


def test_generate_honours_every_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fleet.yaml"
    code, out, err = _run(
        capsys,
        "fleet",
        "generate",
        "--nodes=4",
        "--gpus-per-node=8",
        "--model=L40S",
        "--fill=0.6",
        "--seed=7",
        "--pool=batch",
        "-o",
        str(path),
    )
    assert (code, out, err) == (EXIT_OK, "", "")
    expected = generate_fleet(4, 8, "L40S", 0.6, seed=7, pool="batch")
    assert path.read_text(encoding="utf-8") == expected.to_yaml()
    assert expected.pods


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--nodes", "0", "--gpus-per-node", "8", "--model", "H100"], "--nodes: must be at least"),
        (["--nodes", "x", "--gpus-per-node", "8", "--model", "H100"], "argument --nodes"),
        (["--nodes", "1", "--gpus-per-node", "32", "--model", "H100"], "--gpus-per-node: must"),
        (["--nodes", "1", "--gpus-per-node", "8", "--model", "Z9"], "--model: unknown GPU model"),
        (["--nodes", "1", "--gpus-per-node", "8", "--model", "H100", "--fill", "2"], "--fill"),
        (["--nodes", "1", "--gpus-per-node", "8", "--model", "H100", "--fill", "nan"], "--fill"),
        (["--nodes", "1", "--gpus-per-node", "8", "--model", "H100", "--pool", "A"], "--pool"),
        (["--nodes", "1", "--gpus-per-node", "8", "--model", "H100", "--seed", "1.5"], "--seed"),
        (["--nodes", "1", "--gpus-per-node", "8"], "--model"),
    ],
)
def test_generate_bad_flags_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str
) -> None:
    code, out, err = _run(capsys, "fleet", "generate", *flags)
    assert code == EXIT_USAGE
    assert out == ""
    assert fragment in err


def test_generate_to_an_unwritable_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "fleet.yaml"
    code, _, err = _run(
        capsys,
        "fleet",
        "generate",
        "--nodes=1",
        "--gpus-per-node=1",
        "--model=T4",
        "-o",
        str(target),
    )
    assert code == EXIT_USAGE
    assert err.startswith(f"{target}: cannot write")
    assert not target.exists()


def test_check_reports_ok_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fleet.yaml"
    fleet = generate_fleet(3, 4, "A100-40", 0.5, seed=1)
    path.write_text(fleet.to_yaml(), encoding="utf-8")
    code, out, err = _run(capsys, "fleet", "check", str(path))
    assert (code, err) == (EXIT_OK, "")
    assert out == f"{path}: OK (3 nodes, 12 GPUs, {len(fleet.pods)} pods)\n"


def test_check_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = generate_fleet(2, 2, "H100")
    fleet.gpus[0]["status"]["capacity"]["vram"] = "-1"
    fleet.gpus[3]["status"]["nvlinkPeers"].append("node-00000-gpu-0")
    fleet.nodes.pop()
    path = tmp_path / "fleet.yaml"
    path.write_text(fleet.to_yaml(), encoding="utf-8")
    code, out, _ = _run(capsys, "fleet", "check", str(path))
    assert code == EXIT_INVALID
    assert out.splitlines() == [
        f"{path}: GPUNode/node-00001: metadata.name: there is no Node named 'node-00001'",
        f"{path}: GPU/node-00000-gpu-0: status.capacity.vram: must not be negative (got '-1')",
        f"{path}: GPU/node-00001-gpu-0: metadata.labels['tensor-fusion.ai/owner']: "
        "there is no Node named 'node-00001'",
        f"{path}: GPU/node-00001-gpu-1: metadata.labels['tensor-fusion.ai/owner']: "
        "there is no Node named 'node-00001'",
        f"{path}: GPU/node-00001-gpu-1: status.nvlinkPeers[1]: "
        "'node-00000-gpu-0' is not a GPU on the same node (node-00001)",
    ]


def test_check_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.safe_dump_all([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}])
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, _ = _run(capsys, "fleet", "check", "-")
    assert code == EXIT_INVALID
    assert out == (
        "<stdin>: document 1: kind: must be one of Node, GPUNode, GPU, GPUPool, Pod, "
        "SchedulingConfigTemplate, got 'Secret'\n"
    )


def test_check_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Node\nmetadata: {name: a\n", encoding="utf-8")
    code, out, _ = _run(capsys, "fleet", "check", str(path))
    assert code == EXIT_INVALID
    assert out.startswith(f"{path}: line 3: malformed YAML")
    assert out.count("\n") == 1


def test_check_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "fleet", "check", str(tmp_path / "missing.yaml"))
    assert code == EXIT_USAGE
    assert out == ""
    assert "missing.yaml: cannot read: No such file or directory" in err


@pytest.mark.parametrize("args", [["fleet"], ["fleet", "simulate"], ["fleet", "check"]])
def test_fleet_usage_errors(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = _run(capsys, *args)
    assert code == EXIT_USAGE
    assert "usage: tensor-fusion fleet" in err
