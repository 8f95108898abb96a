"""The dynamic config (`dynamicConfig` in the Helm values, /etc/tensor-fusion/config.yaml
in the controller): metrics retention and format, and the alert rules."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from tensorfusion.api.base import ApiModel, field_problem, first_duplicate
from tensorfusion.api.duration import Duration, parse_duration

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def _check_template(text: str) -> str:
    """Reject text whose `{{ }}` actions are unbalanced or empty; the evaluator renders the rest."""
    if text.count("{{") != text.count("}}"):
        raise ValueError("template has unbalanced '{{' and '}}'")
    for action in _ACTION.findall(text):
        if not action.strip():
            raise ValueError("template has an empty action '{{ }}'")
    return text


Template = Annotated[str, AfterValidator(_check_template)]


class AlertRule(ApiModel):
    """One alert rule in the guide's format (R4)."""

    name: str = Field(min_length=1)
    query: Template = Field(min_length=1)
    threshold: float = 0
    evaluation_interval: Duration = Field(alias="evaluationInterval")
    consecutive_count: int = Field(default=1, ge=1, alias="consecutiveCount")
    severity: str = Field(min_length=1)
    summary: Template = ""
    description: Template = ""
    alert_target_instance: Template = Field(default="", alias="alertTargetInstance")
    runbook_url: str = Field(default="", alias="runbookURL")

    @model_validator(mode="after")
    def _interval_positive(self) -> AlertRule:
        if parse_duration(self.evaluation_interval) <= timedelta(0):
            raise field_problem("evaluationInterval", "must be longer than 0")
        return self


class DynamicConfig(ApiModel):
    metrics_ttl: Duration = Field(default="30d", alias="metricsTTL")
    metrics_format: Literal["influx", "json", "otel"] = Field(
        default="influx", alias="metricsFormat"
    )
    alert_rules: list[AlertRule] = Field(default_factory=list, alias="alertRules")

    @model_validator(mode="after")
    def _rule_names_unique(self) -> DynamicConfig:
        if duplicate := first_duplicate(rule.name for rule in self.alert_rules):
            index, name = duplicate
            raise field_problem(f"alertRules[{index}].name", f"duplicate rule {name!r}")
        return self
