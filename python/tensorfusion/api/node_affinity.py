"""core/v1 NodeAffinity, as a workload carries it for its worker pods."""

from __future__ import annotations

from pydantic import Field

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import NodeSelector, NodeSelectorTerm


class PreferredSchedulingTerm(ApiModel):
    weight: int
    preference: NodeSelectorTerm


class NodeAffinity(ApiModel):
    required: NodeSelector | None = Field(
        default=None, alias="requiredDuringSchedulingIgnoredDuringExecution"
    )
    preferred: list[PreferredSchedulingTerm] = Field(
        default_factory=list, alias="preferredDuringSchedulingIgnoredDuringExecution"
    )
