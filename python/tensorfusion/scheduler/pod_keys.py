"""How the scheduler names a pod and which of its annotations make up its GPU demand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensorfusion.api.annotations import (
    COMPUTE_PERCENT_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    GPU_COUNT,
    TFLOPS_LIMIT,
    TFLOPS_REQUEST,
    VRAM_LIMIT,
    VRAM_REQUEST,
)

DEMAND_ANNOTATIONS = (
    TFLOPS_REQUEST,
    TFLOPS_LIMIT,
    VRAM_REQUEST,
    VRAM_LIMIT,
    COMPUTE_PERCENT_REQUEST,
    COMPUTE_PERCENT_LIMIT,
    GPU_COUNT,
)
"""The annotations that decide how much of each GPU a pod takes."""


def pod_key(metadata: Mapping[str, Any]) -> tuple[str, str, str]:
    """(uid, namespace, name). A pod without a UID (a hand-written fleet file) is keyed by
    namespace/name, which is unique at any one time."""
    namespace = metadata.get("namespace") or "default"
    name = metadata.get("name") or ""
    return metadata.get("uid") or f"{namespace}/{name}", namespace, name
