from __future__ import annotations

import os
from pathlib import Path

import pytest

from tensorfusion.alert.rule_loader import RuleSource, parse_dynamic_config
from tensorfusion.errors import ConfigError

RULE = """
alertRules:
  - name: {name}
    query: "SELECT 1 AS x WHERE {{{{ .Conditions }}}}"
    evaluationInterval: 15s
    severity: P1
    summary: "{summary}"
"""


def write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    write(path, RULE.format(name="First", summary="ok"), 1_000_000_000)
    return path


def names(source: RuleSource) -> list[str]:
    return [rule.name for rule in source.config.alert_rules]


def test_loads_rules_and_defaults(config_file: Path) -> None:
    source = RuleSource(config_file)
    assert names(source) == ["First"]
    assert source.config.metrics_ttl == "30d"
    assert not source.poll()


def test_reloads_when_the_content_changes(config_file: Path) -> None:
    source = RuleSource(config_file)
    write(config_file, RULE.format(name="Second", summary="ok"), 2_000_000_000)
    assert source.poll()
    assert names(source) == ["Second"]
    assert not source.poll()


def test_touched_but_identical_file_is_not_a_change(config_file: Path) -> None:
    source = RuleSource(config_file)
    os.utime(config_file, ns=(5_000_000_000, 5_000_000_000))
    assert not source.poll()


def test_same_mtime_and_size_is_not_reread(config_file: Path) -> None:
    source = RuleSource(config_file)
    write(config_file, RULE.format(name="Forst", summary="ok"), 1_000_000_000)
    assert not source.poll()  # the cheap check is mtime and size; a real edit moves mtime
    assert names(source) == ["First"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alertRules: [\n", "line"),
        ("- a\n", "must be a mapping"),
        ("a: 1\n---\nb: 2\n", "one YAML document"),
        (RULE.format(name="X", summary="{{ .x | upper }}"), "alertRules['X'].summary"),
        ("alertRules:\n  - name: X\n", "alertRules[0]"),
        ("metricsTTL: forever\n", "metricsTTL"),
    ],
)
def test_invalid_new_version_keeps_the_old_rules(
    config_file: Path, text: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = RuleSource(config_file)
    write(config_file, text, 3_000_000_000)
    assert not source.poll()
    assert names(source) == ["First"]
    assert problem in caplog.text
    caplog.clear()
    assert not source.poll()  # reported once
    assert caplog.text == ""
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[")):
        parse_dynamic_config(text, "config.yaml")


def test_deleted_file_keeps_the_rules(config_file: Path) -> None:
    source = RuleSource(config_file)
    config_file.unlink()
    assert not source.poll()
    assert names(source) == ["First"]


def test_missing_or_invalid_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        RuleSource(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("alertRules: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alertRules"):
        RuleSource(bad)


def test_empty_file_means_no_rules(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert RuleSource(empty).config.alert_rules == []
