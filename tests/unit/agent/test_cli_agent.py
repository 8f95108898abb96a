"""`tensor-fusion agent`'s flags: a bad one is a usage error (exit 2) that names it, before
anything starts. (The running command is tested against the API-server emulator in
tests/kube/test_agent_kube.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorfusion.cli import main


@pytest.fixture(autouse=True)
def no_greptime(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GREPTIME_HOST", "GREPTIME_PORT", "NODE_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "--node-name: required (or set NODE_NAME"),
        (["--node-name", "Bad_Node"], "--node-name: "),
        (["--node-name", "n", "--interval", "0"], "--interval: must be a finite number > 0"),
        (["--node-name", "n", "--interval", "31"], "--interval: must be at most 30 s"),
        (["--node-name", "n", "--bind-address", "8000"], "--bind-address: '8000' is not"),
        (["--node-name", "n", "--kubeconfig", "/nonexistent"], "--kubeconfig: no such file"),
    ],
)
def test_a_bad_flag_is_named(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["agent", "--state-dir", str(tmp_path / "state"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err


def test_an_unreadable_interval_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--interval", "soon"])
    assert exited.value.code == 2
    assert "argument --interval: must be a number of seconds, got 'soon'" in capsys.readouterr().err


def test_a_bad_greptime_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GREPTIME_HOST", "greptime")
    monkeypatch.setenv("GREPTIME_PORT", "http")
    assert main(["agent", "--node-name", "n"]) == 2
    assert "GREPTIME_PORT: must be a port number" in capsys.readouterr().err


def test_the_node_name_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With NODE_NAME set the next check is reached: the kubeconfig."""
    monkeypatch.setenv("NODE_NAME", "gpu-node-1")
    code = main(["agent", "--state-dir", str(tmp_path), "--kubeconfig", str(tmp_path / "none")])
    assert code == 2
    assert "--kubeconfig: no such file" in capsys.readouterr().err
