from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tensorfusion.alert.evaluator import Evaluator
from tensorfusion.alert.model import Alert
from tensorfusion.api.dynamic_config import AlertRule
from tests.unit.alert.conftest import SECOND_NS, TableSink

T0 = 1_700_000_000 * SECOND_NS
BASE_S = T0 // SECOND_NS


class Outbox:
    def __init__(self) -> None:
        self.batches: list[list[Alert]] = []

    def send(self, alerts: Sequence[Alert]) -> bool:
        self.batches.append(list(alerts))
        return True


def hot_gpu_rule(**overrides: Any) -> AlertRule:
    spec: dict[str, Any] = {
        "name": "GPUHot",
        "query": "SELECT uuid, node, MAX(temperature) AS t FROM gpu WHERE {{ .Conditions }} "
        "GROUP BY uuid, node HAVING MAX(temperature) > {{ .Threshold }}",
        "threshold": 90,
        "evaluationInterval": "10s",
        "consecutiveCount": 2,
        "severity": "P1",
        "summary": "{{ .Name }} at {{ .Severity }}",
        "description": "GPU {{ .uuid }} on {{ .node }} is {{ .t }} > {{ .Threshold }}",
        "alertTargetInstance": "{{ .node }}-{{ .uuid }}",
        "runbookURL": "https://runbooks.example/gpu-hot",
    }
    return AlertRule.model_validate(spec | overrides)


def heat(sink: TableSink, at_s: float, uuid: str = "g0", temperature: float = 95) -> None:
    sink.add("gpu", [{"ts_s": at_s, "uuid": uuid, "node": "n1", "temperature": temperature}])


def seconds(s: float) -> int:
    return T0 + int(s * SECOND_NS)


def first_hit(sink: TableSink, evaluator: Evaluator) -> None:
    heat(sink, BASE_S - 5)
    evaluator.tick(seconds(0))


@pytest.fixture
def evaluator(sink: TableSink) -> Evaluator:
    ev = Evaluator(sink, Outbox())
    ev.set_rules([hot_gpu_rule()])
    return ev


def test_fires_after_consecutive_hits_with_labels_and_annotations(
    sink: TableSink, evaluator: Evaluator
) -> None:
    heat(sink, BASE_S - 5)
    assert evaluator.tick(seconds(0)) == []  # first hit: 1 of 2
    heat(sink, BASE_S + 5)
    [alert] = evaluator.tick(seconds(10))
    assert alert.labels == {
        "alertname": "GPUHot",
        "severity": "P1",
        "job": "tensor-fusion",
        "instance": "n1-g0",
    }
    assert alert.annotations == {
        "summary": "GPUHot at P1",
        "description": "GPU g0 on n1 is 95 > 90",
        "runbook_url": "https://runbooks.example/gpu-hot",
    }
    assert alert.starts_at_ns == seconds(10)
    assert alert.ends_at_ns > seconds(10)
    assert not alert.resolved


def test_firing_alert_is_resent_then_resolved_when_it_disappears(
    sink: TableSink, evaluator: Evaluator
) -> None:
    for step in range(3):
        heat(sink, BASE_S + step * 10 - 5)
        evaluator.tick(seconds(step * 10))
    outbox = evaluator.sender
    assert isinstance(outbox, Outbox)
    assert [len(batch) for batch in outbox.batches] == [0, 1, 1]
    assert outbox.batches[2][0].starts_at_ns == seconds(10)  # re-sent, same start
    [resolved] = evaluator.tick(seconds(30))  # nothing hot in (20s, 30s]
    assert resolved.resolved
    assert resolved.ends_at_ns == seconds(30)
    assert resolved.starts_at_ns == seconds(10)
    assert evaluator.tick(seconds(40)) == []  # resolved once, then nothing


def test_a_break_in_the_streak_restarts_the_count(sink: TableSink, evaluator: Evaluator) -> None:
    first_hit(sink, evaluator)
    evaluator.tick(seconds(10))  # miss
    heat(sink, BASE_S + 15)
    assert evaluator.tick(seconds(20)) == []  # 1 of 2 again
    heat(sink, BASE_S + 25)
    assert len(evaluator.tick(seconds(30))) == 1


def test_query_is_rendered_with_window_threshold_and_names(
    sink: TableSink, evaluator: Evaluator
) -> None:
    heat(sink, 0)
    evaluator.tick(seconds(0))
    start_ms, end_ms = (T0 - 10 * SECOND_NS) // 10**6, T0 // 10**6
    assert sink.queries == [
        "SELECT uuid, node, MAX(temperature) AS t FROM gpu WHERE "
        f"ts >= {start_ms} AND ts < {end_ms} GROUP BY uuid, node HAVING MAX(temperature) > 90"
    ]


def test_rule_runs_only_when_due(sink: TableSink, evaluator: Evaluator) -> None:
    heat(sink, 0)
    evaluator.tick(seconds(0))
    evaluator.tick(seconds(9.999))
    assert len(sink.queries) == 1
    assert evaluator.next_due_ns() == seconds(10)
    evaluator.tick(seconds(10))
    assert len(sink.queries) == 2


def test_without_rules_nothing_is_due(sink: TableSink) -> None:
    assert Evaluator(sink).next_due_ns() is None


def test_windows_are_contiguous_and_a_long_gap_is_covered_once(
    sink: TableSink, evaluator: Evaluator
) -> None:
    first_hit(sink, evaluator)
    heat(sink, BASE_S + 100)  # only inside the gap
    [alert] = evaluator.tick(seconds(300))  # one evaluation spanning (0s, 300s]
    assert alert.starts_at_ns == seconds(300)
    # the next window starts where the gap's ended: the gap's row is not counted again
    assert evaluator.tick(seconds(310))[0].resolved


def test_clock_stepping_back_neither_reevaluates_nor_double_counts(
    sink: TableSink, evaluator: Evaluator
) -> None:
    first_hit(sink, evaluator)
    for back in (-60, -1, 5):  # all before the next due time
        assert evaluator.tick(seconds(back)) == []
    assert len(sink.queries) == 1
    heat(sink, BASE_S + 5)
    [alert] = evaluator.tick(seconds(10))  # second hit: fires, counted once per window
    assert alert.starts_at_ns == seconds(10)
    assert sink.queries[1].count(f"ts >= {T0 // 10**6} AND") == 1


def test_failing_rule_is_unhealthy_and_others_still_run(sink: TableSink) -> None:
    outbox = Outbox()
    evaluator = Evaluator(sink, outbox)
    evaluator.set_rules(
        [
            hot_gpu_rule(name="BadSQL", query="SELEC nonsense WHERE {{ .Conditions }}"),
            hot_gpu_rule(name="NoTable", query="SELECT * FROM missing WHERE {{ .Conditions }}"),
            hot_gpu_rule(name="BadTemplate", summary="{{ .x | upper }}"),
            hot_gpu_rule(consecutiveCount=1),
        ]
    )
    heat(sink, BASE_S - 1)
    [alert] = evaluator.tick(seconds(0))
    assert alert.labels["alertname"] == "GPUHot"
    health = evaluator.health()
    assert health["GPUHot"].healthy
    assert health["GPUHot"].last_evaluation_ns == seconds(0)
    assert not health["BadSQL"].healthy
    assert "syntax error" in health["BadSQL"].error
    assert "no such table: missing" in health["NoTable"].error
    assert "alertRules['BadTemplate'].summary" in health["BadTemplate"].error
    assert health["BadTemplate"].last_evaluation_ns is None


def test_failed_evaluation_keeps_its_window_for_the_next_attempt(sink: TableSink) -> None:
    evaluator = Evaluator(sink)
    evaluator.set_rules([hot_gpu_rule(consecutiveCount=1)])
    first_hit(sink, evaluator)
    sink.db.execute("ALTER TABLE gpu RENAME TO gpu_moved")  # the table vanishes for a while
    heat_later = BASE_S + 5
    evaluator.tick(seconds(10))
    assert not evaluator.health()["GPUHot"].healthy
    sink.db.execute("ALTER TABLE gpu_moved RENAME TO gpu")
    heat(sink, heat_later)  # written during the failed window
    [alert] = evaluator.tick(seconds(20))
    assert not alert.resolved
    assert evaluator.health()["GPUHot"].healthy


def test_unexpected_sink_exception_marks_rule_unhealthy(sink: TableSink) -> None:
    class Broken(TableSink):
        def query(self, sql: str) -> list[dict[str, Any]]:
            raise RuntimeError("driver bug")

    evaluator = Evaluator(Broken())
    evaluator.set_rules([hot_gpu_rule()])
    assert evaluator.tick(seconds(0)) == []
    assert evaluator.health()["GPUHot"].error == "RuntimeError: driver bug"


def test_instance_defaults_to_rule_name_and_rows_collapse_per_instance(sink: TableSink) -> None:
    evaluator = Evaluator(sink)
    evaluator.set_rules(
        [hot_gpu_rule(alertTargetInstance="", consecutiveCount=1, description="{{ .uuid }}")]
    )
    heat(sink, BASE_S - 2, uuid="g0")
    heat(sink, BASE_S - 1, uuid="g1")
    [alert] = evaluator.tick(seconds(0))
    assert alert.labels["instance"] == "GPUHot"
    assert alert.annotations["description"] in ("g0", "g1")


def test_removed_and_changed_rules_resolve_their_alerts(sink: TableSink) -> None:
    evaluator = Evaluator(sink)
    evaluator.set_rules(
        [hot_gpu_rule(consecutiveCount=1), hot_gpu_rule(name="Other", consecutiveCount=1)]
    )
    heat(sink, BASE_S - 1)
    assert len(evaluator.tick(seconds(0))) == 2
    evaluator.set_rules([hot_gpu_rule(consecutiveCount=1, severity="P0")])
    heat(sink, BASE_S + 5)
    alerts = evaluator.tick(seconds(10))
    resolved = sorted((a.labels["alertname"], a.labels["severity"]) for a in alerts if a.resolved)
    firing = [(a.labels["alertname"], a.labels["severity"]) for a in alerts if not a.resolved]
    assert resolved == [("GPUHot", "P1"), ("Other", "P1")]
    assert firing == [("GPUHot", "P0")]
    assert all(a.ends_at_ns == seconds(10) for a in alerts if a.resolved)


def test_unchanged_rule_keeps_its_streak_across_reload(
    sink: TableSink, evaluator: Evaluator
) -> None:
    heat(sink, BASE_S - 1)
    evaluator.tick(seconds(0))
    evaluator.set_rules([hot_gpu_rule()])
    heat(sink, BASE_S + 5)
    assert len(evaluator.tick(seconds(10))) == 1
