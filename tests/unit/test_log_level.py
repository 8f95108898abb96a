"""TF_LOG_LEVEL on the Python side: parsing, and configuring Python and native logging."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator

import pytest

from tensorfusion import _native
from tensorfusion.errors import ConfigError
from tensorfusion.log import LEVELS, TRACE, configure_logging, parse_log_level

VALID = "valid levels: trace, debug, info, warn, error"


@pytest.fixture(autouse=True)
def logger() -> Iterator[logging.Logger]:
    """The "tensorfusion" logger, with its handlers and level (and the native level) restored."""
    logger = logging.getLogger("tensorfusion")
    handlers, level, native = list(logger.handlers), logger.level, _native.log_level()
    yield logger
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
    _native.set_log_level(native)


def test_levels() -> None:
    assert LEVELS == ("trace", "debug", "info", "warn", "error")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "info"),
        ("", "info"),
        *((lvl, lvl) for lvl in LEVELS),
        ("TRACE", "trace"),
        ("DeBuG", "debug"),
        ("Info", "info"),
        ("WARN", "warn"),
        ("warning", "warn"),
        ("WARNING", "warn"),
        ("Error", "error"),
    ],
)
def test_parse_valid(value: str | None, expected: str) -> None:
    assert parse_log_level(value) == expected


BAD_VALUES = ["verbose", "5", "info ", " info", "\tdebug", "warn\n", "inf", "warnings", "none"]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_parse_invalid(value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_log_level(value)
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert err.field == "TF_LOG_LEVEL"
    assert err.message == f"invalid log level {value!r}; {VALID}"
    assert str(err) == f"TF_LOG_LEVEL: invalid log level {value!r}; {VALID}"


@pytest.mark.parametrize("value", [*LEVELS, "WARNING", "Debug", *BAD_VALUES, "\u212aey"])
def test_python_and_native_parsers_agree(value: str) -> None:
    try:
        python_result: str | None = parse_log_level(value)
    except ConfigError:
        python_result = None
    try:
        _native.set_log_level(value)
        native_result: str | None = _native.log_level()
    except ValueError:
        native_result = None
    assert python_result == native_result


@pytest.mark.parametrize(
    ("value", "python_level"),
    [
        ("trace", TRACE),
        ("debug", logging.DEBUG),
        ("info", logging.INFO),
        ("warn", logging.WARNING),
        ("error", logging.ERROR),
    ],
)
def test_configure_sets_python_and_native_levels(
    value: str, python_level: int, logger: logging.Logger
) -> None:
    assert configure_logging({"TF_LOG_LEVEL": value.upper()}) == value
    assert logger.level == python_level
    assert _native.log_level() == value


def test_configure_defaults_to_info(logger: logging.Logger) -> None:
    _native.set_log_level("error")
    assert configure_logging({}) == "info"
    assert logger.level == logging.INFO
    assert _native.log_level() == "info"


def test_configure_reads_os_environ_by_default(
    monkeypatch: pytest.MonkeyPatch, logger: logging.Logger
) -> None:
    monkeypatch.setenv("TF_LOG_LEVEL", "error")
    assert configure_logging() == "error"
    assert logger.level == logging.ERROR
    assert _native.log_level() == "error"


def test_configure_rejects_bad_value_without_side_effects(logger: logging.Logger) -> None:
    configure_logging({"TF_LOG_LEVEL": "debug"})
    handlers = list(logger.handlers)
    with pytest.raises(ConfigError, match="TF_LOG_LEVEL") as excinfo:
        configure_logging({"TF_LOG_LEVEL": "verbose"})
    assert "'verbose'" in str(excinfo.value)
    assert logger.level == logging.DEBUG
    assert _native.log_level() == "debug"
    assert logger.handlers == handlers


def test_configure_is_idempotent(logger: logging.Logger) -> None:
    before = len(logger.handlers)
    configure_logging({"TF_LOG_LEVEL": "info"})
    after_first = len(logger.handlers)
    assert before <= after_first <= before + 1
    assert after_first >= 1
    configure_logging({"TF_LOG_LEVEL": "error"})
    assert len(logger.handlers) == after_first
    assert logger.level == logging.ERROR


def test_trace_level_is_named(logger: logging.Logger) -> None:
    configure_logging({"TF_LOG_LEVEL": "trace"})
    assert logging.getLevelName(TRACE) == "TRACE"
    assert logger.isEnabledFor(TRACE)


def test_records_go_to_current_stderr_in_the_documented_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The handler is created while stderr points elsewhere; it must still follow sys.stderr.
    elsewhere = io.StringIO()
    with contextlib.redirect_stderr(elsewhere):
        configure_logging({"TF_LOG_LEVEL": "info"})
    child = logging.getLogger("tensorfusion.test")
    child.debug("hidden")
    child.warning("shown %d", 1)
    assert elsewhere.getvalue() == ""
    err = capsys.readouterr().err
    timestamp = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}"
    assert re.fullmatch(rf"{timestamp} WARNING tensorfusion\.test: shown 1\n", err), err
