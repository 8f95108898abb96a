"""The `node` query parameter that narrows a listing (`/api/gpus`, `/api/workers`) to the
rows of some nodes: a client showing a few nodes of a large fleet fetches only those."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

NodeFilter = Annotated[
    list[str] | None,
    Query(alias="node", description="only this node's rows; repeat it for several nodes"),
]
