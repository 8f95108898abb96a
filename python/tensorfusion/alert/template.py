"""The subset of Go's text/template that alert rules use: `{{ .Field }}` actions (any
identifier, spaces inside the braces, `{{-` / `-}}` trim markers) over a map of values.

Rendering follows Go for a `map[string]any`: a missing key prints `<no value>`, nil prints
`<nil>`, floats print in `%v` form (97, not 97.0). Anything else inside braces is rejected
when the template is compiled, naming the rule and field, so a bad rule never half-renders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tensorfusion.errors import ConfigError

_ACTION = re.compile(r"\{\{(?P<open>-\s)?\s*(?P<body>.*?)\s*(?P<close>\s-)?\}\}", re.DOTALL)
_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_NO_VALUE = "<no value>"


@dataclass(frozen=True)
class Template:
    """A compiled template: literal text alternating with field names."""

    # parts[0::2] are literals, parts[1::2] field names; always an odd count.
    parts: tuple[str, ...]

    def render(self, values: Mapping[str, object]) -> str:
        out: list[str] = []
        for index, part in enumerate(self.parts):
            if index % 2 == 0:
                out.append(part)
            else:
                out.append(format_value(values[part]) if part in values else _NO_VALUE)
        return "".join(out)

    @property
    def fields(self) -> tuple[str, ...]:
        return self.parts[1::2]


def compile_template(text: str, where: str) -> Template:
    """Parse `text`; `where` names it in errors, e.g. `alertRules['GPUVRAMFull'].query`."""
    parts: list[str] = []
    literal_start = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        literal = text[literal_start : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group("open"):
            literal = literal.rstrip()
        _check_literal(literal, where)
        field = _FIELD.fullmatch(match.group("body"))
        if field is None:
            raise ConfigError(
                where,
                f"unsupported template action {match.group(0)!r}: only field references "
                "such as '{{ .Threshold }}' or '{{ .worker }}' are allowed",
            )
        parts += [literal, field.group(1)]
        literal_start = match.end()
        trim_next = match.group("close") is not None
    tail = text[literal_start:]
    tail = tail.lstrip() if trim_next else tail
    _check_literal(tail, where)
    parts.append(tail)
    return Template(tuple(parts))


def _check_literal(literal: str, where: str) -> None:
    # An action the pattern could not close ("{{ .x" or "{{ .x }" ) would otherwise print as
    # text, and Go rejects it, so reject it too.
    if "{{" in literal:
        raise ConfigError(
            where, f"unclosed template action near {literal[literal.index('{{') :]!r}"
        )


def format_value(value: object) -> str:
    """Print a value as Go's `%v` prints the equivalent Go value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _format_float(value: float) -> str:
    # Go's %v is %g with the shortest round-trip digits, which switches to an exponent below
    # 1e-4 and from 1e6 on (1000000.0 prints as 1e+06; Python's repr switches at 1e16).
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    exact = Decimal(repr(value))
    exponent = exact.adjusted()
    if -4 <= exponent < 6:
        text = format(exact, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    digits = format(exact.scaleb(-exponent).normalize(), "f")
    return f"{digits}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
