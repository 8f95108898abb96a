"""GreptimeSink against a loopback stand-in that checks each request against GreptimeDB's
documented HTTP API (see greptime_standin)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tensorfusion.api.helm_values import GreptimeValues
from tensorfusion.errors import ConfigError, QueryError, SinkUnavailable
from tensorfusion.metrics.greptime_sink import GreptimeSink, create_table_sql
from tensorfusion.metrics.point import Point, Unsigned
from tests.unit.metrics.greptime_standin import Server, StandIn, records

NOW_NS = 1_700_000_000_123_456_789


def values(state: StandIn, **overrides: Any) -> GreptimeValues:
    settings = {
        "installStandalone": False,
        "host": "127.0.0.1",
        "port": state.port,
        "user": state.user,
        "password": state.password,
        "db": state.db,
    }
    return GreptimeValues.model_validate(settings | overrides)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with Server(StandIn(db="tf_metrics")) as state:
        yield state


@pytest.fixture
def sink(standin: StandIn) -> GreptimeSink:
    return GreptimeSink(values(standin), timeout_s=5)


def usage(worker: str, time_ns: int = NOW_NS) -> Point:
    fields = {"memory_bytes": 7, "compute_percentage": 1.5, "throttled": Unsigned(2)}
    return Point("tf_worker_usage", {"worker": worker}, fields, time_ns)  # type: ignore[arg-type]


def test_write_creates_the_table_once_then_posts_line_protocol_in_ms(
    sink: GreptimeSink, standin: StandIn
) -> None:
    sink.write([usage("w1"), usage("w2")])
    sink.write([usage("w3")])
    assert standin.violations == []
    assert standin.statements == [create_table_sql(usage("w1"))]
    assert [p.tags["worker"] for p in standin.points] == ["w1", "w2", "w3"]
    assert standin.points[0].time_ns == NOW_NS // 1_000_000 * 1_000_000
    assert standin.points[0].fields["throttled"] == Unsigned(2)


def test_the_table_has_ts_as_time_index_and_tags_as_primary_key() -> None:
    sql = create_table_sql(Point("m", {"node": "n"}, {"a": 1, "b": True, "c": "x"}, 0))
    assert sql == (
        'CREATE TABLE IF NOT EXISTS "m" ("node" STRING NULL, "a" BIGINT NULL, '
        '"b" BOOLEAN NULL, "c" STRING NULL, ts TIMESTAMP(3) NOT NULL, TIME INDEX (ts), '
        'PRIMARY KEY ("node"))'
    )
    assert "PRIMARY KEY" not in create_table_sql(Point("m", {}, {"a": 1.0}, 0))


def test_query_turns_records_into_dicts(sink: GreptimeSink, standin: StandIn) -> None:
    sql = "SELECT worker, ts FROM tf_worker_usage"
    standin.answers[sql] = (200, records(["worker", "ts"], [["w1", 1], ["w2", 2]]))
    assert sink.query(sql) == [{"worker": "w1", "ts": 1}, {"worker": "w2", "ts": 2}]
    assert sink.query("DELETE FROM x") == []
    assert standin.violations == []


def test_sql_errors_carry_greptimes_message(sink: GreptimeSink, standin: StandIn) -> None:
    standin.answers["SELEC 1"] = (400, {"code": 1004, "error": "sql parser error: SELEC"})
    standin.answers["SELECT nope"] = (200, {"code": 3000, "error": "column nope not found"})
    with pytest.raises(QueryError, match="sql parser error: SELEC"):
        sink.query("SELEC 1")
    with pytest.raises(QueryError, match="column nope not found"):
        sink.query("SELECT nope")


def test_tables_and_ttl(sink: GreptimeSink, standin: StandIn) -> None:
    standin.answers["SHOW TABLES"] = (200, records(["Tables"], [["b"], ["a"]]))
    assert sink.tables() == ["a", "b"]
    sink.set_ttl("30d")
    sink.set_ttl("0")
    assert standin.statements[1:] == [
        """ALTER DATABASE "tf_metrics" SET 'ttl'='2592000s'""",
        """ALTER DATABASE "tf_metrics" SET 'ttl'='forever'""",
    ]
    with pytest.raises(ConfigError, match="metricsTTL"):
        sink.set_ttl("a month")


def test_time_window_uses_millisecond_timestamps(sink: GreptimeSink) -> None:
    assert sink.time_window(NOW_NS, NOW_NS + 10**9) == (
        "ts >= to_timestamp_millis(1700000000123) AND ts < to_timestamp_millis(1700000001123)"
    )
    with pytest.raises(ConfigError, match="end_ns"):
        sink.time_window(2, 1)


def test_wrong_credentials_keep_the_batch_for_a_retry(standin: StandIn) -> None:
    sink = GreptimeSink(values(standin, password="wrong"))
    with pytest.raises(SinkUnavailable, match="401"):
        sink.write([usage("w1")])
    assert standin.points == []


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_unavailable(sink: GreptimeSink, standin: StandIn, status: int) -> None:
    standin.write_status = status
    with pytest.raises(SinkUnavailable, match=str(status)):
        sink.write([usage("w1")])


def test_a_refused_write_is_a_config_error(sink: GreptimeSink, standin: StandIn) -> None:
    standin.write_status = 400
    with pytest.raises(ConfigError, match=r"refused the batch: .*write refused"):
        sink.write([usage("w1")])


def test_a_refused_create_table_is_a_config_error(sink: GreptimeSink, standin: StandIn) -> None:
    standin.answers[create_table_sql(usage("w1"))] = (400, {"code": 1004, "error": "bad type"})
    with pytest.raises(ConfigError, match="bad type"):
        sink.write([usage("w1")])
    assert standin.points == []


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = StandIn()
    state.port = port
    sink = GreptimeSink(values(state), timeout_s=2)
    with pytest.raises(SinkUnavailable, match=r"127.0.0.1"):
        sink.write([usage("w1")])
    with pytest.raises(SinkUnavailable):
        sink.query("SELECT 1")


def test_a_closed_sink_is_unavailable(sink: GreptimeSink) -> None:
    sink.close()
    with pytest.raises(SinkUnavailable, match="closed"):
        sink.write([usage("w1")])


def test_cloud_uses_https_and_a_host_is_required(standin: StandIn) -> None:
    cloud = GreptimeSink(values(standin, isCloud=True))
    # The stand-in speaks plain HTTP, so a TLS handshake against it must fail.
    with pytest.raises(SinkUnavailable, match=r"https|SSL|ssl"):
        cloud.query("SELECT 1")
    with pytest.raises(ConfigError, match=r"greptime.host"):
        GreptimeSink(GreptimeValues())


def test_no_user_sends_no_auth_header(standin: StandIn) -> None:
    sink = GreptimeSink(values(standin, user=None, password=None))
    with pytest.raises(SinkUnavailable, match="401"):
        sink.query("SELECT 1")


def test_empty_writes_send_nothing(sink: GreptimeSink, standin: StandIn) -> None:
    sink.write([])
    assert standin.statements == []
