"""The Grafana dashboard in the chart: valid per Grafana's dashboard model, laid out on its
24-column grid, querying only the metrics tables and columns users know, every query known
to run.

The dashboard reads GreptimeDB through Grafana's built-in MySQL data source. Its SQL keeps to
a subset GreptimeDB and SQLite read alike, so here each query runs on an `EmbeddedSink` with
Grafana's `$__timeFilter(ts)` macro and the template variables expanded as Grafana would.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import jsonschema
import pytest

from tensorfusion.metrics.embedded_sink import EmbeddedSink
from tensorfusion.metrics.point import FieldValue, Point

ROOT = Path(__file__).parents[2]
DASHBOARD_PATH = ROOT / "charts" / "tensor-fusion" / "dashboards" / "tensor-fusion.json"
SCHEMA_PATH = ROOT / "tests" / "fixtures" / "grafana" / "dashboard.schema.json"
DASHBOARD: Final[dict[str, Any]] = json.loads(DASHBOARD_PATH.read_text())

# The metrics tables as the compatibility reference lists them: tags, then fields, then the
# time index every table has. For tf_system_metrics it lists these two fields only; the other
# tables it names (tf_pool_metrics, tf_gpu_metrics, ...) have no column list, so the
# dashboard does not read them.
COMPAT_TAGS: Final[Mapping[str, tuple[str, ...]]] = {
    "tf_worker_usage": ("workload", "worker", "namespace", "pool", "node", "uuid"),
    "tf_gpu_usage": ("node", "pool", "uuid"),
    "tf_node_metrics": ("node", "pool", "phase"),
    "tf_system_metrics": (),
}
COMPAT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "tf_worker_usage": (
        "compute_tflops",
        "compute_percentage",
        "memory_bytes",
        "memory_percentage",
        "compute_throttled_cnt",
        "vram_freezed_cnt",
        "vram_resumed_cnt",
    ),
    "tf_gpu_usage": (
        "compute_percentage",
        "memory_percentage",
        "memory_bytes",
        "compute_tflops",
        "rx",
        "tx",
        "temperature",
        "power_usage",
    ),
    "tf_node_metrics": (
        "allocated_tflops",
        "allocated_tflops_percent",
        "allocated_vram_bytes",
        "allocated_vram_percent",
        "allocated_tflops_percent_virtual",
        "allocated_vram_percent_virtual",
        "gpu_count",
    ),
    "tf_system_metrics": ("total_allocation_fail_cnt", "total_allocation_success_cnt"),
}
COMPAT_COLUMNS: Final[Mapping[str, frozenset[str]]] = {
    table: frozenset({*COMPAT_TAGS[table], *COMPAT_FIELDS[table], "ts"}) for table in COMPAT_TAGS
}

DATASOURCE: Final = {"type": "mysql", "uid": "${datasource}"}
VARIABLES: Final = ("pool", "node", "worker")
TIME_FILTER: Final = "$__timeFilter(ts)"
# The SQL words GreptimeDB and SQLite both read the same way. Every other word must be a
# metrics table, one of its columns or an alias; a function outside this list would be a
# dialect difference (date functions and Grafana's other time macros are the usual ones).
KEYWORDS: Final = frozenset(
    {"select", "distinct", "from", "where", "and", "in", "as", "group", "by", "order"}
)
FUNCTIONS: Final = frozenset({"sum", "avg", "min", "max", "nullif"})

_TOKEN = re.compile(
    r"""(?P<macro>\$__\w+\([^)]*\))
    |(?P<variable>\$\{?\w+\}?)
    |(?P<string>'[^']*')
    |(?P<number>\d+(?:\.\d+)?)
    |(?P<word>[A-Za-z_]\w*)
    |(?P<symbol>[(),*+\-/=<>])
    |(?P<space>\s+)
    |(?P<other>.)""",
    re.VERBOSE,
)

# --- what is checked ---------------------------------------------------------------------


def all_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels a collapsed row holds included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def query_panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(dashboard) if panel["type"] != "row"]


def query_variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [var for var in dashboard["templating"]["list"] if var["type"] == "query"]


def schema_errors(dashboard: Mapping[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(dashboard)]


def layout_problems(dashboard: Mapping[str, Any]) -> list[str]:
    """Panels beyond the 24 columns, overlapping panels and repeated panel ids."""
    problems: list[str] = []
    boxes: list[tuple[str, int, int, int, int]] = []
    for panel in dashboard["panels"]:  # a collapsed row's panels are not on the grid
        pos = panel["gridPos"]
        x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
        if x + w > 24:
            problems.append(f"{panel['title']!r} ends at column {x + w}, past 24")
        for title, ox, oy, ow, oh in boxes:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"{panel['title']!r} overlaps {title!r}")
        boxes.append((panel["title"], x, y, w, h))
    ids = [panel["id"] for panel in all_panels(dashboard)]
    problems += [
        f"panel id {i} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})
    ]
    return problems


def datasource_problems(dashboard: Mapping[str, Any]) -> list[str]:
    """Every query must go through the `datasource` variable, which offers MySQL sources."""
    problems: list[str] = []
    chooser = [var for var in dashboard["templating"]["list"] if var["name"] == "datasource"]
    if [(var["type"], var.get("query")) for var in chooser] != [("datasource", "mysql")]:
        problems.append("no `datasource` variable of type datasource offering mysql")
    users = [(f"panel {p['title']!r}", p) for p in query_panels(dashboard)]
    users += [
        (f"panel {p['title']!r} target {t['refId']}", t)
        for p in query_panels(dashboard)
        for t in p["targets"]
    ]
    users += [(f"variable ${v['name']}", v) for v in query_variables(dashboard)]
    problems += [
        f"{where} uses {user.get('datasource')}"
        for where, user in users
        if user.get("datasource") != DATASOURCE
    ]
    return problems


def sql_problems(sql: str) -> list[str]:
    """Words that are not portable SQL, a COMPAT table or a column of the tables queried."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(sql) if m.lastgroup != "space"]
    problems = [] if TIME_FILTER in sql else [f"no {TIME_FILTER}: the query reads all history"]
    words = [text for kind, text in tokens if kind == "word"]
    aliases = {after for before, after in itertools.pairwise(words) if before.lower() == "as"}
    tables = {after for before, after in itertools.pairwise(words) if before.lower() == "from"}
    problems += [
        f"{table!r} is not a COMPAT metrics table"
        for table in sorted(tables - COMPAT_COLUMNS.keys())
    ]
    columns = frozenset().union(*(COMPAT_COLUMNS.get(table, frozenset()) for table in tables))
    for i, (kind, text) in enumerate(tokens):
        called = i + 1 < len(tokens) and tokens[i + 1][1] == "("
        if kind == "other":
            problems.append(f"{text!r} (quoted identifiers and other syntax) is not portable")
        elif kind == "macro" and text != TIME_FILTER:
            problems.append(f"macro {text!r} expands to MySQL-only SQL")
        elif kind == "variable" and text.strip("${}") not in VARIABLES:
            problems.append(f"{text} is not a template variable")
        elif kind != "word" or text.lower() in KEYWORDS or text in aliases | tables:
            continue
        elif called:
            if text.lower() not in FUNCTIONS:
                problems.append(f"function {text}() is outside the portable subset")
        elif text not in columns:
            problems.append(f"{text!r} is not a column of {sorted(tables)}")
    return problems


def targets() -> list[tuple[str, str, str]]:
    """(panel title, format, SQL) of every panel query."""
    return [
        (panel["title"], target["format"], target["rawSql"])
        for panel in query_panels(DASHBOARD)
        for target in panel["targets"]
    ]


TITLES: Final = [title for title, _, _ in targets()]


def every_sql() -> list[tuple[str, str]]:
    found = [(title, sql) for title, _, sql in targets()]
    return found + [(f"${var['name']}", var["query"]) for var in query_variables(DASHBOARD)]


def expand(sql: str, time_filter: str, selection: Mapping[str, Sequence[str]]) -> str:
    """The SQL Grafana sends: the time macro expanded, each variable as a list of quoted
    strings (how Grafana's SQL data sources write a multi-value or All selection)."""

    def values(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in selection:
            raise ValueError(f"no value selected for ${name}")
        return ", ".join("'" + value.replace("'", "''") + "'" for value in selection[name])

    return re.sub(r"\$(\w+)", values, sql.replace(TIME_FILTER, time_filter))


# --- the metrics the queries run on ------------------------------------------------------

SECOND_NS = 10**9
T0 = 1_700_000_000 * SECOND_NS
TICKS = (T0, T0 + 10 * SECOND_NS)
STALE = T0 - 86_400 * SECOND_NS  # a day before the window: the time filter must drop it
WINDOW = (T0 - 60 * SECOND_NS, T0 + 60 * SECOND_NS)
GIB = 2**30

NODES = {"n1": "pool-a", "n2": "pool-a", "n3": "pool-b"}
GPUS = {"GPU-1": "n1", "GPU-2": "n1", "GPU-3": "n2", "GPU-4": "n3"}
WORKERS = {"w1": "GPU-1", "w2": "GPU-3", "w3": "GPU-4"}
NODE_TFLOPS = {"n1": 100.0, "n2": 50.0, "n3": 10.0}
ALL_SELECTED: Final = {"pool": ["pool-a", "pool-b"], "node": list(NODES), "worker": list(WORKERS)}


def _row(table: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], at: int) -> Point:
    # Exactly the COMPAT columns, so a query naming any other column fails here.
    assert (tuple(tags), tuple(fields)) == (COMPAT_TAGS[table], COMPAT_FIELDS[table])
    return Point(table, tags, fields, at)


def _points(tick: int, at: int) -> Iterator[Point]:
    for node, pool in NODES.items():
        tflops = NODE_TFLOPS[node]
        yield _row(
            "tf_node_metrics",
            {"node": node, "pool": pool, "phase": "Running"},
            {
                "allocated_tflops": tflops,
                "allocated_tflops_percent": tflops / 2,
                "allocated_vram_bytes": int(tflops) * GIB // 10,
                "allocated_vram_percent": tflops / 4,
                "allocated_tflops_percent_virtual": tflops / 4,
                "allocated_vram_percent_virtual": tflops / 8,
                "gpu_count": sum(1 for gpu_node in GPUS.values() if gpu_node == node),
            },
            at,
        )
    for index, (uuid, node) in enumerate(GPUS.items()):
        yield _row(
            "tf_gpu_usage",
            {"node": node, "pool": NODES[node], "uuid": uuid},
            {
                "compute_percentage": 10.0 * index + tick,
                "memory_percentage": 20.0 + index,
                "memory_bytes": (index + 1) * GIB,
                "compute_tflops": 5.0 * index,
                "rx": 1000.0 + tick,
                "tx": 2000.0 + tick,
                "temperature": 60.0 + index,
                "power_usage": 250.0,
            },
            at,
        )
    for worker, uuid in WORKERS.items():
        node = GPUS[uuid]
        yield _row(
            "tf_worker_usage",
            {
                "workload": f"{worker}-workload",
                "worker": worker,
                "namespace": "default",
                "pool": NODES[node],
                "node": node,
                "uuid": uuid,
            },
            {
                "compute_tflops": 2.5,
                "compute_percentage": 12.5,
                "memory_bytes": GIB,
                "memory_percentage": 6.25,
                "compute_throttled_cnt": 3 * tick,
                "vram_freezed_cnt": tick,
                "vram_resumed_cnt": tick,
            },
            at,
        )
    yield _row(
        "tf_system_metrics",
        {},
        {"total_allocation_fail_cnt": 1 + 2 * tick, "total_allocation_success_cnt": 10 + 4 * tick},
        at,
    )


@pytest.fixture(scope="module")
def sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSink]:
    metrics = EmbeddedSink(tmp_path_factory.mktemp("grafana") / "metrics.db", ttl="0")
    stale = [
        _row(
            "tf_system_metrics",
            {},
            {"total_allocation_fail_cnt": 0, "total_allocation_success_cnt": 0},
            STALE,
        )
    ]
    metrics.write(stale + [point for tick, at in enumerate(TICKS) for point in _points(tick, at)])
    yield metrics
    metrics.close()


def run(
    sink: EmbeddedSink,
    sql: str,
    selection: Mapping[str, Sequence[str]] = ALL_SELECTED,
    window: tuple[int, int] = WINDOW,
) -> list[dict[str, Any]]:
    return sink.query(expand(sql, sink.time_window(*window), selection))


def panel_sql(title: str) -> str:
    (sql,) = [sql for panel_title, _, sql in targets() if panel_title == title]
    return sql


def broken(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A copy of the dashboard with one thing wrong."""
    dashboard = copy.deepcopy(DASHBOARD)
    mutate(dashboard)
    return dashboard


# --- Grafana's dashboard model -----------------------------------------------------------


def test_schema_is_itself_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))


def test_dashboard_matches_grafanas_model() -> None:
    assert schema_errors(DASHBOARD) == []


def _first(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: next(p for p in d["panels"] if (p["type"] == "row") == (kind == "row"))


_panel = _first("panel")
_row_panel = _first("row")


def _variable(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda d: next(v for v in d["templating"]["list"] if v["name"] == name)


SCHEMA_BREAKS: Final[dict[str, Callable[[dict[str, Any]], object]]] = {
    "no title": lambda d: d.pop("title"),
    "schemaVersion as text": lambda d: d.update(schemaVersion="39"),
    "no templating list": lambda d: d["templating"].pop("list"),
    "graphTooltip out of range": lambda d: d.update(graphTooltip=3),
    "panel wider than the grid": lambda d: _panel(d)["gridPos"].update(w=25),
    "panel starting past the grid": lambda d: _panel(d)["gridPos"].update(x=24),
    "panel of zero height": lambda d: _panel(d)["gridPos"].update(h=0),
    "panel at a fractional row": lambda d: _panel(d)["gridPos"].update(y=1.5),
    "gridPos without y": lambda d: _panel(d)["gridPos"].pop("y"),
    "panel without a type": lambda d: _panel(d).update(type=""),
    "panel id negative": lambda d: _panel(d).update(id=-1),
    "panel without fieldConfig overrides": lambda d: _panel(d)["fieldConfig"].pop("overrides"),
    "target without refId": lambda d: _panel(d)["targets"][0].pop("refId"),
    "target in an unknown format": lambda d: _panel(d)["targets"][0].update(format="series"),
    "target without SQL": lambda d: _panel(d)["targets"][0].update(rawSql=""),
    "row without its panels list": lambda d: _row_panel(d).pop("panels"),
    "row with a target-less panel inside": lambda d: _row_panel(d)["panels"].append(
        {"type": "stat", "id": 999, "title": "x", "gridPos": {"x": 0, "y": 0, "w": 1, "h": 1}}
    ),
    "variable of an unknown type": lambda d: _variable("pool")(d).update(type="dropdown"),
    "variable hidden in a fourth way": lambda d: _variable("pool")(d).update(hide=3),
    "variable refreshed in a fourth way": lambda d: _variable("pool")(d).update(refresh=3),
    "query variable without a data source": lambda d: _variable("node")(d).pop("datasource"),
    "datasource variable without a plugin": lambda d: _variable("datasource")(d).update(query=""),
    "data source reference with a name field": lambda d: _panel(d)["datasource"].update(name="x"),
}


@pytest.mark.parametrize("name", SCHEMA_BREAKS)
def test_schema_refuses_what_grafanas_model_refuses(name: str) -> None:
    assert schema_errors(broken(SCHEMA_BREAKS[name])) != []


# --- layout on the grid ------------------------------------------------------------------


def test_panels_fit_the_grid_without_overlapping_and_ids_are_unique() -> None:
    assert layout_problems(DASHBOARD) == []


def _move(index: int, **pos: int) -> Callable[[dict[str, Any]], object]:
    return lambda d: d["panels"][index]["gridPos"].update(pos)


LAYOUT_BREAKS: Final[dict[str, tuple[Callable[[dict[str, Any]], object], str]]] = {
    "a panel past column 24": (_move(1, x=20, w=8), "past 24"),
    "a panel over its neighbour": (_move(2, x=6), "overlaps"),
    "a panel over a row": (_move(1, y=0), "overlaps"),
    "two panels with one id": (lambda d: d["panels"][2].update(id=d["panels"][1]["id"]), "twice"),
    "a collapsed row's panel reusing an id": (
        lambda d: _row_panel(d)["panels"].append(copy.deepcopy(d["panels"][1])),
        "twice",
    ),
}


@pytest.mark.parametrize("name", LAYOUT_BREAKS)
def test_layout_check_reports(name: str) -> None:
    breaking, message = LAYOUT_BREAKS[name]
    assert any(message in problem for problem in layout_problems(broken(breaking)))


# --- data source and variables -----------------------------------------------------------


def test_every_query_uses_the_datasource_variable() -> None:
    assert datasource_problems(DASHBOARD) == []


DATASOURCE_BREAKS: Final[dict[str, Callable[[dict[str, Any]], object]]] = {
    "a panel bound to one data source": lambda d: _panel(d).update(
        datasource={"type": "mysql", "uid": "P211906C1C32DB77E"}
    ),
    "a target of another plugin": lambda d: _panel(d)["targets"][0].update(
        datasource={"type": "prometheus", "uid": "${datasource}"}
    ),
    "a target without a data source": lambda d: _panel(d)["targets"][0].pop("datasource"),
    "a variable bound to one data source": lambda d: _variable("worker")(d).update(
        datasource={"type": "mysql", "uid": "greptime"}
    ),
    "the chooser offering PostgreSQL": lambda d: _variable("datasource")(d).update(
        query="grafana-postgresql-datasource"
    ),
    "no chooser": lambda d: d["templating"]["list"].remove(_variable("datasource")(d)),
}


@pytest.mark.parametrize("name", DATASOURCE_BREAKS)
def test_datasource_check_reports(name: str) -> None:
    assert datasource_problems(broken(DATASOURCE_BREAKS[name])) != []


def test_variables_choose_source_then_pool_node_worker_narrowing_each_other() -> None:
    names = [var["name"] for var in DASHBOARD["templating"]["list"]]
    assert names == ["datasource", *VARIABLES]
    for var in query_variables(DASHBOARD):
        # Several or all values at once, listed again when the time range changes.
        assert (var["multi"], var["includeAll"], var["refresh"]) == (True, True, 2)
    queries = {var["name"]: var["query"] for var in query_variables(DASHBOARD)}
    assert "$pool" in queries["node"]
    assert "$pool" in queries["worker"]
    assert "$node" in queries["worker"]


def test_variable_lists_come_from_the_tables(sink: EmbeddedSink) -> None:
    queries = {var["name"]: var["query"] for var in query_variables(DASHBOARD)}
    listed = {
        name: [
            next(iter(row.values()))
            for row in run(sink, sql, {"pool": ["pool-a"], "node": ["n1", "n2"]})
        ]
        for name, sql in queries.items()
    }
    assert listed == {"pool": ["pool-a", "pool-b"], "node": ["n1", "n2"], "worker": ["w1", "w2"]}


# --- SQL: COMPAT names only, portable, and it runs ----------------------------------------


@pytest.mark.parametrize(("where", "sql"), every_sql(), ids=[where for where, _ in every_sql()])
def test_sql_names_only_compat_tables_and_columns(where: str, sql: str) -> None:
    assert sql_problems(sql) == []


def test_every_compat_field_is_on_the_dashboard() -> None:
    words = {m.group() for _, sql in every_sql() for m in re.finditer(r"\w+", sql)}
    assert {
        f"{t}.{f}" for t, fields in COMPAT_FIELDS.items() for f in fields if f not in words
    } == set()
    tables = {table for _, sql in every_sql() for table in COMPAT_COLUMNS if table in sql}
    assert tables == set(COMPAT_COLUMNS)


def test_queries_filter_on_the_variables_their_table_has() -> None:
    for title, sql in every_sql():
        (table,) = {t for t in COMPAT_COLUMNS if re.search(rf"\bFROM {t}\b", sql)}
        used = set(re.findall(r"\$(?!__)(\w+)", sql))
        assert used <= COMPAT_COLUMNS[table], title  # no filter on a column the table lacks
        if "pool" in COMPAT_COLUMNS[table] and title != "$pool":
            assert "pool" in used, title


BAD_SQL: Final[dict[str, tuple[str, str]]] = {
    "a table COMPAT does not list": (
        "SELECT ts AS time, capacity FROM tf_pool_metrics WHERE $__timeFilter(ts)",
        "not a COMPAT metrics table",
    ),
    "a column no table has": (
        "SELECT ts AS time, node, capacity_tflops FROM tf_node_metrics WHERE $__timeFilter(ts)",
        "'capacity_tflops' is not a column",
    ),
    "another table's column": (
        "SELECT ts AS time, temperature FROM tf_worker_usage WHERE $__timeFilter(ts)",
        "'temperature' is not a column",
    ),
    "a MySQL-only function": (
        "SELECT FROM_UNIXTIME(ts) AS time, rx FROM tf_gpu_usage WHERE $__timeFilter(ts)",
        "function FROM_UNIXTIME()",
    ),
    "a PostgreSQL-style function": (
        "SELECT date_trunc('minute', ts) AS time FROM tf_gpu_usage WHERE $__timeFilter(ts)",
        "function date_trunc()",
    ),
    "an identifier in double quotes": (
        'SELECT "pool" FROM tf_node_metrics WHERE $__timeFilter(ts)',
        "not portable",
    ),
    "an identifier in backticks": (
        "SELECT `pool` FROM tf_node_metrics WHERE $__timeFilter(ts)",
        "not portable",
    ),
    "another time macro": (
        "SELECT $__timeGroup(ts, '1m') AS time FROM tf_gpu_usage WHERE $__timeFilter(ts)",
        "MySQL-only",
    ),
    "an unknown variable": (
        "SELECT rx FROM tf_gpu_usage WHERE $__timeFilter(ts) AND uuid IN ($gpu)",
        "$gpu is not a template variable",
    ),
    "no time filter": ("SELECT DISTINCT pool FROM tf_node_metrics", "no $__timeFilter(ts)"),
    "an OR the check does not vouch for": (
        "SELECT rx FROM tf_gpu_usage WHERE $__timeFilter(ts) OR pool IN ($pool)",
        "'OR' is not a column",
    ),
}


@pytest.mark.parametrize("name", BAD_SQL)
def test_sql_check_reports(name: str) -> None:
    sql, message = BAD_SQL[name]
    assert any(message in problem for problem in sql_problems(sql)), sql_problems(sql)


def test_the_test_tables_hold_exactly_the_compat_columns(sink: EmbeddedSink) -> None:
    assert sink.tables() == sorted(COMPAT_COLUMNS)
    for table, columns in COMPAT_COLUMNS.items():
        assert set(sink.query(f"SELECT * FROM {table} LIMIT 1")[0]) == columns


@pytest.mark.parametrize(("title", "format_", "sql"), targets(), ids=TITLES)
def test_panel_sql_runs_on_the_embedded_sink(
    sink: EmbeddedSink, title: str, format_: str, sql: str
) -> None:
    rows = run(sink, sql)
    assert rows
    assert any(value is not None for row in rows for value in row.values())
    if format_ == "time_series":
        # Grafana wants a `time` column, rows sorted by it.
        times = [row["time"] for row in rows]
        assert times == sorted(times)
        assert set(times) == {at // 1_000_000 for at in TICKS}


def test_pool_panels_sum_and_average_over_the_pools_nodes(sink: EmbeddedSink) -> None:
    rows = run(sink, panel_sql("Pool TFLOPS allocated"))
    assert {(row["pool"], row["allocated_tflops"]) for row in rows} == {
        ("pool-a", 150.0),
        ("pool-b", 10.0),
    }
    assert len(rows) == 2 * len(TICKS)
    rows = run(sink, panel_sql("Pool TFLOPS allocation: physical vs virtual capacity"))
    assert {(row["pool"], row["of_physical"], row["of_virtual"]) for row in rows} == {
        ("pool-a", 37.5, 18.75),
        ("pool-b", 5.0, 2.5),
    }


def test_allocation_counts_are_the_rise_within_the_time_range(sink: EmbeddedSink) -> None:
    # The stale row (counters at zero) lies outside the range and must not count.
    assert run(sink, panel_sql("Allocations succeeded")) == [{"succeeded": 4}]
    assert run(sink, panel_sql("Allocations failed")) == [{"failed": 2}]
    (rate,) = run(sink, panel_sql("Allocation failure rate"))
    assert rate["failure_rate"] == pytest.approx(100 * 2 / 6)


def test_node_table_shows_the_latest_sample_only(sink: EmbeddedSink) -> None:
    rows = run(sink, panel_sql("Nodes (latest sample)"))
    assert [(row["node"], row["pool"], row["gpu_count"]) for row in rows] == [
        ("n1", "pool-a", 2),
        ("n2", "pool-a", 1),
        ("n3", "pool-b", 1),
    ]


@pytest.mark.parametrize(("title", "format_", "sql"), targets(), ids=TITLES)
def test_panels_show_nothing_outside_the_time_range(
    sink: EmbeddedSink, title: str, format_: str, sql: str
) -> None:
    later = (T0 + 3600 * SECOND_NS, T0 + 7200 * SECOND_NS)
    rows = run(sink, sql, window=later)
    assert all(value is None for row in rows for value in row.values())


@pytest.mark.parametrize(("title", "format_", "sql"), targets(), ids=TITLES)
def test_panels_keep_to_the_selected_pool_node_and_worker(
    sink: EmbeddedSink, title: str, format_: str, sql: str
) -> None:
    selection = {"pool": ["pool-b"], "node": ["n3"], "worker": ["w3"]}
    expected = {"pool": "pool-b", "node": "n3", "worker": "w3", "uuid": "GPU-4"}
    rows = run(sink, sql, selection)
    assert rows
    for row in rows:
        shown = {key: row[key] for key in expected if key in row}
        assert shown == {key: expected[key] for key in shown}


def test_expand_refuses_a_variable_without_a_selection() -> None:
    with pytest.raises(ValueError, match=r"\$gpu"):
        expand("SELECT rx FROM tf_gpu_usage WHERE uuid IN ($gpu)", "1 = 1", ALL_SELECTED)
