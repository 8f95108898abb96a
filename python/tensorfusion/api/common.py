"""Parts shared by several kinds: GPU resource pairs, node-selector requirements, label
selectors, taints, conditions and container resource requirements."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tensorfusion.api.advice import Advice
from tensorfusion.api.base import ApiModel, field_problem
from tensorfusion.api.names import is_decimal
from tensorfusion.api.quantity import NonNegativeQuantity

QoSLevel = Literal["low", "medium", "high", "critical"]
QOS_LEVELS: tuple[QoSLevel, ...] = ("low", "medium", "high", "critical")
FreeForm = dict[str, Any]
"""A nested document we carry as is (pod templates, vendor parameters)."""


class GPUResource(ApiModel):
    """An amount of GPU: TFLOPS and VRAM bytes, or compute as a percent of one GPU."""

    tflops: NonNegativeQuantity | None = None
    vram: NonNegativeQuantity | None = None
    compute: NonNegativeQuantity | None = None


class GPUResourcePair(ApiModel):
    """Requests and limits as upstream reports or plans them (a recommendation, a scheduled
    target): both required, and not held to each other."""

    requests: GPUResource
    limits: GPUResource


class GPUResources(GPUResourcePair):
    """Requests and limits of GPU that a workload asks for; a limit below its request is an
    error."""

    requests: GPUResource = Field(default_factory=GPUResource)
    limits: GPUResource = Field(default_factory=GPUResource)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> GPUResources:
        for name in ("tflops", "vram"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request is not None and limit is not None and limit < request:
                raise field_problem(
                    f"limits.{name}",
                    f"must be >= requests.{name} (limit {limit} < request {request})",
                )
        return self


class GPUOrCPUResource(ApiModel):
    """Pool capacity bounds: GPU and, for provisioned pools, CPU and memory."""

    tflops: NonNegativeQuantity | None = None
    vram: NonNegativeQuantity | None = None
    cpu: NonNegativeQuantity | None = None
    memory: NonNegativeQuantity | None = None


class NodeSelectorRequirement(ApiModel):
    """`key operator values`, with the API server's rules on how many values each takes."""

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = "In"
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> NodeSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise field_problem("values", f"must not be empty for operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise field_problem("values", f"must be empty for operator {self.operator}")
        if self.operator in ("Gt", "Lt") and (
            len(self.values) != 1 or not is_decimal(self.values[0].removeprefix("-"))
        ):
            raise field_problem("values", f"must be a single integer for operator {self.operator}")
        return self


def _selects_nothing(terms: list[NodeSelectorTerm]) -> str | None:
    return None if terms else "is empty, so the selector matches no node"


class NodeSelectorTerm(ApiModel):
    match_expressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list, alias="matchFields")


class NodeSelector(ApiModel):
    node_selector_terms: Annotated[list[NodeSelectorTerm], Advice(_selects_nothing)] = Field(
        alias="nodeSelectorTerms"
    )


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(ApiModel):
    """metav1.LabelSelector: which objects (nodes, workloads) a rule applies to."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, alias="matchExpressions"
    )


class Taint(ApiModel):
    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class Condition(ApiModel):
    """metav1.Condition, as written into status by reconcilers."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class ResourceRequirements(ApiModel):
    """A container's (or a chart component's) `resources`; requests may not exceed limits."""

    requests: dict[str, NonNegativeQuantity] = Field(default_factory=dict)
    limits: dict[str, NonNegativeQuantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> ResourceRequirements:
        for name, request in self.requests.items():
            limit = self.limits.get(name)
            if limit is not None and limit < request:
                raise field_problem(
                    f"requests[{name!r}]",
                    f"must be <= limits[{name!r}] (request {request} > limit {limit})",
                )
        return self
