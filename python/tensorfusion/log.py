"""TF_LOG_LEVEL: one verbosity setting for the Python code and the native core.

The native core keeps its own level (it must not call back into Python to ask), so
`configure_logging` sets both from the same parsed value.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final, TextIO

from tensorfusion import _native
from tensorfusion.errors import ConfigError

ENV_VAR: Final = "TF_LOG_LEVEL"
LEVELS: Final = ("trace", "debug", "info", "warn", "error")
LOGGER_NAME: Final = "tensorfusion"
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Python logging has no level below DEBUG; the native core has trace, so add one.
TRACE: Final = 5

_PYTHON_LEVELS: Final[Mapping[str, int]] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def parse_log_level(value: str | None) -> str:
    """Return the canonical level name for a TF_LOG_LEVEL value.

    Unset or empty means "info". Matching ignores (ASCII) case and accepts "warning" for "warn",
    exactly like the native parser; surrounding whitespace is an error, not silently stripped.
    """
    if not value:
        return "info"
    name = value.lower() if value.isascii() else value
    if name == "warning":
        name = "warn"
    if name not in _PYTHON_LEVELS:
        raise ConfigError(
            field=ENV_VAR,
            message=f"invalid log level {value!r}; valid levels: {', '.join(LEVELS)}",
        )
    return name


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at emit time.

    A plain StreamHandler keeps the stream it was created with, which goes stale when stderr is
    replaced later (pytest capture, redirect_stderr) and then fails on a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always follow sys.stderr


def configure_logging(env: Mapping[str, str] | None = None) -> str:
    """Apply TF_LOG_LEVEL (from `env`, default `os.environ`) to Python and native logging.

    Returns the level name. Raises ConfigError for an invalid value, before changing anything.
    Safe to call more than once: the "tensorfusion" logger never gets a second handler.
    """
    name = parse_log_level((os.environ if env is None else env).get(ENV_VAR))

    logging.addLevelName(TRACE, "TRACE")
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(_PYTHON_LEVELS[name])
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)

    _native.set_log_level(name)
    return name
