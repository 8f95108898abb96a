from __future__ import annotations

import pytest

from tensorfusion.alert.template import compile_template, format_value
from tensorfusion.errors import ConfigError


def render(text: str, **values: object) -> str:
    return compile_template(text, "rule.field").render(values)


def test_renders_fields_with_or_without_spaces() -> None:
    assert render("{{ .Name }}/{{.worker}}/{{   .node   }}", Name="R", worker="w", node="n") == (
        "R/w/n"
    )


def test_literal_text_is_kept_verbatim() -> None:
    text = "SELECT a FROM t WHERE x > 1 -- } { }}"
    assert render(text) == text


def test_missing_key_renders_like_go() -> None:
    assert render("worker {{ .worker }}") == "worker <no value>"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (97.0, "97"),
        (0.5, "0.5"),
        (-0.0, "-0"),
        (1e21, "1e+21"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (-2.5e7, "-2.5e+07"),
        (1.5e-5, "1.5e-05"),
        (0.0001, "0.0001"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
        (None, "<nil>"),
        (True, "true"),
        (7, "7"),
        (b"gpu-0", "gpu-0"),
    ],
)
def test_values_print_as_go_prints_them(value: object, shown: str) -> None:
    assert format_value(value) == shown
    assert render("{{ .v }}", v=value) == shown


def test_trim_markers_remove_adjacent_whitespace() -> None:
    assert render("a  {{- .x -}}  b", x="X") == "aXb"
    assert render("a  {{ .x -}}\n  b {{- .y }} c", x="X", y="Y") == "a  XbY c"


def test_fields_lists_referenced_names_in_order() -> None:
    assert compile_template("{{ .a }}{{ .b }}x{{ .a }}", "f").fields == ("a", "b", "a")


@pytest.mark.parametrize(
    "text",
    [
        "{{ .worker | upper }}",
        "{{ if .x }}y{{ end }}",
        "{{ worker }}",
        "{{ .a.b }}",
        "{{ . }}",
        "{{-3}}",
        "{{ .x }",
        "tail {{ .x",
        "{{ .ok }} then {{",
    ],
)
def test_malformed_actions_are_errors_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_template(text, "alertRules['R'].summary")
    assert caught.value.field == "alertRules['R'].summary"
