"""`tensor-fusion controller` on the command line: help, refusals and warnings, before
anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tensorfusion.cli import main


def test_help_prints_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["controller", "-help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tensor-fusion controller")
    assert "-leader-elect" in out
    assert "-api-auth" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["-no-such-flag"], "--no-such-flag: no such flag"),
        (["--leader-elect=sometimes"], "--leader-elect: invalid boolean value"),
        (["-metrics-bind-address", "9000"], "--metrics-bind-address: '9000' is not host:port"),
    ],
)
def test_a_bad_flag_exits_2_naming_it(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["controller", *argv]) == 2
    assert named in capsys.readouterr().err


def test_ignored_upstream_flags_are_warned_about_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A kubeconfig that does not exist stops the start, after the warnings.
    missing = tmp_path / "missing-kubeconfig"
    argv = ["-enable-auto-scale", "-enable-auto-expander", f"-kubeconfig={missing}"]
    assert main(["controller", *argv, f"-state-dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "warning: --enable-auto-scale is not implemented yet; ignored" in err
    assert "warning: --enable-auto-expander is not implemented yet; ignored" in err
    assert str(missing) in err
