"""The bodies of `POST /api/workers` and `PATCH /api/workers/{name}`.

Only the wire is checked here (types, presence, a pid being a pid); what a quantity or a name
may be is the backend's to judge, with the same grammar as the annotations."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Final

from pydantic import ConfigDict, Field, PlainValidator, StrictInt, StrictStr, WithJsonSchema
from pydantic.config import JsonDict

from tensorfusion.server.backend import WorkerRequest
from tensorfusion.server.schemas import Wire

PID_MAX = (1 << 31) - 1
"""pid_t is a 32-bit signed integer; a larger number cannot name a process."""

Pid = Annotated[StrictInt, Field(ge=1, le=PID_MAX)]


def _as_grammar(floats: bool, what: str) -> Callable[[Any], str]:
    """A JSON number or a string, as the annotation grammar's string (one error, not one
    per member of a union)."""

    def convert(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if floats and isinstance(value, float) and math.isfinite(value):
            return str(value)
        raise ValueError(f"must be {what} or a quantity string")

    return convert


Tflops = Annotated[
    str,
    PlainValidator(_as_grammar(floats=True, what="a number")),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "examples": [100, "500m"]}),
]
Vram = Annotated[
    str,
    PlainValidator(_as_grammar(floats=False, what="an integer of bytes")),
    WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string"}], "examples": [4294967296, "16Gi"]}
    ),
]


ONE_OF_EACH_PAIR: Final[JsonDict] = {
    "allOf": [
        {
            "anyOf": [
                {"required": [field], "properties": {field: {"not": {"type": "null"}}}}
                for field in (f"{resource}Request", f"{resource}Limit")
            ]
        }
        for resource in ("tflops", "vram")
    ]
}
"""What WorkerRequest requires, for the spec: a request defaults to its limit and back."""


class WorkerCreate(Wire):
    # A misspelt optional field must not be silently dropped (its partner would be taken).
    model_config = ConfigDict(extra="forbid", json_schema_extra=ONE_OF_EACH_PAIR)

    tflops_request: Tflops | None = None
    vram_request: Vram | None = None
    tflops_limit: Tflops | None = None
    vram_limit: Vram | None = None
    gpu_count: StrictInt = 1
    pool: StrictStr | None = None
    gpu_model: StrictStr | None = None
    name: StrictStr | None = None
    pid: Pid | None = None
    command: list[StrictStr] = Field(default_factory=list)

    def to_request(self) -> WorkerRequest:
        return WorkerRequest(
            tflops_request=self.tflops_request,
            vram_request=self.vram_request,
            tflops_limit=self.tflops_limit,
            vram_limit=self.vram_limit,
            gpu_count=self.gpu_count,
            pool=self.pool,
            gpu_model=self.gpu_model,
            name=self.name,
            pid=self.pid,
            command=tuple(self.command),
        )


class WorkerPids(Wire):
    model_config = ConfigDict(extra="forbid")

    pids: list[Pid] = Field(min_length=1)
