"""Where GreptimeDB is, read from the environment the chart sets from its `greptime.*` values
(GREPTIME_HOST, GREPTIME_PORT, GREPTIME_USER, GREPTIME_PASSWORD, GREPTIME_DB,
GREPTIME_IS_CLOUD), for the processes the chart runs: the agent, and the controller.

An empty variable counts as unset (Helm renders a missing value as ""). With none of them
set, metrics stay in the embedded store; a bad value is a ConfigError naming the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tensorfusion.api.helm_values import GreptimeValues
from tensorfusion.errors import ConfigError

HOST: Final = "GREPTIME_HOST"
PORT: Final = "GREPTIME_PORT"
USER: Final = "GREPTIME_USER"
PASSWORD: Final = "GREPTIME_PASSWORD"
DB: Final = "GREPTIME_DB"
IS_CLOUD: Final = "GREPTIME_IS_CLOUD"
VARIABLES: Final = (HOST, PORT, USER, PASSWORD, DB, IS_CLOUD)
HTTP_PORT: Final = 4000
"""GreptimeDB's HTTP port, the one its sink speaks (influx writes and SQL)."""
_TRUE: Final = frozenset({"1", "t", "true", "yes"})
_FALSE: Final = frozenset({"0", "f", "false", "no"})


def greptime_from_env(environ: Mapping[str, str]) -> GreptimeValues | None:
    """The GreptimeDB to write to, or None when no GREPTIME_* variable is set."""
    given = {name: environ[name].strip() for name in VARIABLES if environ.get(name, "").strip()}
    if not given:
        return None
    host = given.get(HOST)
    if host is None:
        others = ", ".join(sorted(given))
        raise ConfigError(HOST, f"required when GreptimeDB is configured ({others} set)")
    return GreptimeValues(
        host=host,
        port=_port(given.get(PORT)),
        user=given.get(USER),
        password=given.get(PASSWORD),
        db=given.get(DB, "public"),
        is_cloud=_flag(IS_CLOUD, given.get(IS_CLOUD, "false")),
        # The process connects to GreptimeDB; whether the chart installs it is no concern here.
        install_standalone=False,
    )


def _port(text: str | None) -> int:
    if text is None:
        return HTTP_PORT
    if not text.isascii() or not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise ConfigError(PORT, f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def _flag(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ConfigError(name, f"must be true or false, got {text!r}")
