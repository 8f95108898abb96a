"""How strictly workloads sharing a GPU are kept apart, and which nodes use which mode."""

from __future__ import annotations

from typing import Literal

from tensorfusion.api.base import ApiModel
from tensorfusion.api.common import LabelSelector

IsolationMode = Literal["shared", "soft", "hard", "partitioned"]
ISOLATION_MODE_ACTED_ON: IsolationMode = "soft"
"""The mode the limiter enforces; the others are accepted as upstream's."""
IsolationPolicy = Literal["Static", "Dynamic"]


class IsolationModeRule(ApiModel):
    """Nodes matching `selector` run their GPUs in `mode`."""

    mode: IsolationMode
    selector: LabelSelector
