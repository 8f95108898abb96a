"""Where GreptimeDB is, from the GREPTIME_* variables the chart sets: none set means no
GreptimeDB; a bad value is refused naming the variable."""

from __future__ import annotations

import pytest

from tensorfusion.errors import ConfigError
from tensorfusion.metrics.greptime_env import HTTP_PORT, greptime_from_env


def test_no_variable_or_empty_ones_mean_no_greptime() -> None:
    assert greptime_from_env({}) is None
    assert greptime_from_env({"GREPTIME_HOST": "", "GREPTIME_PORT": " "}) is None


def test_every_variable_is_read() -> None:
    values = greptime_from_env(
        {
            "GREPTIME_HOST": "greptime.example",
            "GREPTIME_PORT": "4010",
            "GREPTIME_USER": "tf",
            "GREPTIME_PASSWORD": "secret",
            "GREPTIME_DB": "metrics",
            "GREPTIME_IS_CLOUD": "true",
        }
    )
    assert values is not None
    assert (values.host, values.port, values.user, values.password) == (
        "greptime.example",
        4010,
        "tf",
        "secret",
    )
    assert (values.db, values.is_cloud, values.install_standalone) == ("metrics", True, False)


def test_defaults_are_the_http_port_and_the_public_db() -> None:
    values = greptime_from_env({"GREPTIME_HOST": "greptime"})
    assert values is not None
    assert (values.port, values.db, values.is_cloud, values.user) == (
        HTTP_PORT,
        "public",
        False,
        None,
    )


@pytest.mark.parametrize(
    ("environ", "field", "message"),
    [
        ({"GREPTIME_PORT": "4000"}, "GREPTIME_HOST", "GREPTIME_PORT set"),
        ({"GREPTIME_HOST": "g", "GREPTIME_PORT": "http"}, "GREPTIME_PORT", "'http'"),
        ({"GREPTIME_HOST": "g", "GREPTIME_PORT": "70000"}, "GREPTIME_PORT", "1 to 65535"),
        ({"GREPTIME_HOST": "g", "GREPTIME_PORT": "٤٠٠٠"}, "GREPTIME_PORT", "port number"),
        ({"GREPTIME_HOST": "g", "GREPTIME_IS_CLOUD": "maybe"}, "GREPTIME_IS_CLOUD", "'maybe'"),
    ],
)
def test_a_bad_value_names_the_variable(environ: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        greptime_from_env(environ)
    assert caught.value.field == field
    assert message in caught.value.message
