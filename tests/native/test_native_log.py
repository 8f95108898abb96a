"""Native logging: level parsing, TF_LOG_LEVEL, and what reaches stderr.

Native code writes to file descriptor 2 directly, which capsys cannot see, so output is checked
in a child interpreter whose stderr is a pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tensorfusion import _native

LEVELS = ("trace", "debug", "info", "warn", "error")
VALID = "valid levels: trace, debug, info, warn, error"


@pytest.fixture(autouse=True)
def _restore_native_level() -> Iterator[None]:
    before = _native.log_level()
    yield
    _native.set_log_level(before)


def run_child(code: str, tf_log_level: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_LOG_LEVEL"}
    if tf_log_level is not None:
        env["TF_LOG_LEVEL"] = tf_log_level
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


EMIT_EVERY_LEVEL = f"""
import sys
from tensorfusion import _native
problem = _native.init_log_from_env()
if problem:
    sys.exit(problem)
for level in {LEVELS!r}:
    _native.log(level, "message at " + level)
"""


@pytest.mark.parametrize("level", LEVELS)
def test_set_and_get_round_trip(level: str) -> None:
    _native.set_log_level(level)
    assert _native.log_level() == level


@pytest.mark.parametrize(
    ("name", "expected"),
    [("WARNING", "warn"), ("warning", "warn"), ("Trace", "trace"), ("ERROR", "error")],
)
def test_set_level_is_case_insensitive_and_accepts_warning(name: str, expected: str) -> None:
    _native.set_log_level(name)
    assert _native.log_level() == expected


@pytest.mark.parametrize("name", ["verbose", "5", "", " info", "info ", "warn\n", "warnings"])
def test_set_level_rejects_unknown_names(name: str) -> None:
    _native.set_log_level("error")
    with pytest.raises(ValueError, match=VALID) as excinfo:
        _native.set_log_level(name)
    assert repr(name) in str(excinfo.value)
    assert _native.log_level() == "error"


def test_log_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match=VALID):
        _native.log("loud", "x")


@pytest.mark.parametrize("threshold", LEVELS)
def test_log_writes_only_at_or_above_the_level(threshold: str, tmp_path: Path) -> None:
    child = run_child(EMIT_EVERY_LEVEL, threshold, tmp_path)
    assert child.returncode == 0, child.stderr
    shown = LEVELS[LEVELS.index(threshold) :]
    assert child.stderr.splitlines() == [
        f"tensorfusion[native] {lvl.upper()}: message at {lvl}" for lvl in shown
    ]
    assert child.stdout == ""


def test_default_level_is_info(tmp_path: Path) -> None:
    child = run_child(EMIT_EVERY_LEVEL, None, tmp_path)
    assert child.returncode == 0, child.stderr
    assert [line.split(":")[0] for line in child.stderr.splitlines()] == [
        "tensorfusion[native] INFO",
        "tensorfusion[native] WARN",
        "tensorfusion[native] ERROR",
    ]


def test_one_call_is_one_line(tmp_path: Path) -> None:
    code = "from tensorfusion import _native\n_native.log('error', 'first\\nsecond')\n"
    child = run_child(code, None, tmp_path)
    assert child.returncode == 0, child.stderr
    assert child.stderr == "tensorfusion[native] ERROR: first\\nsecond\n"


@pytest.mark.parametrize("value", ["verbose", "5", " info", "info ", "warnings"])
def test_init_from_env_rejects_bad_value_and_falls_back_to_info(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _native.set_log_level("error")
    monkeypatch.setenv("TF_LOG_LEVEL", value)
    message = _native.init_log_from_env()
    assert message == f"TF_LOG_LEVEL: invalid log level '{value}'; {VALID}"
    assert _native.log_level() == "info"


def test_init_from_env_escapes_control_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_LOG_LEVEL", "in\x01fo\n")
    message = _native.init_log_from_env()
    assert "'in\\x01fo\\n'" in message
    assert message.isprintable()


@pytest.mark.parametrize(
    ("value", "expected"), [("DEBUG", "debug"), ("warning", "warn"), ("trace", "trace")]
)
def test_init_from_env_accepts_valid_values(
    value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_LOG_LEVEL", value)
    assert _native.init_log_from_env() == ""
    assert _native.log_level() == expected


@pytest.mark.parametrize("value", [None, ""])
def test_init_from_env_unset_or_empty_means_info(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _native.set_log_level("error")
    if value is None:
        monkeypatch.delenv("TF_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_LOG_LEVEL", value)
    assert _native.init_log_from_env() == ""
    assert _native.log_level() == "info"
