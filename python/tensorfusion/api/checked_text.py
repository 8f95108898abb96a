"""A string field checked by a function on input and kept as written (durations, cron)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema


class CheckedText:
    """Use as `Annotated[str, CheckedText(check, "kind", schema)]`; `check` raises ValueError
    with the user-facing message."""

    def __init__(
        self, check: Callable[[str], object], error_type: str, json_schema: JsonSchemaValue
    ) -> None:
        self.check = check
        self.error_type = error_type
        self.json_schema = json_schema

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: str) -> str:
            try:
                self.check(value)
            except ValueError as exc:
                raise PydanticCustomError(self.error_type, str(exc)) from None
            return value

        return core_schema.no_info_after_validator_function(validate, core_schema.str_schema())

    def __get_pydantic_json_schema__(
        self, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.json_schema)
