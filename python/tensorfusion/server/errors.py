"""One JSON shape for every error the API answers with: `{"error", "message", "field"?}`.

Errors raised on purpose anywhere below the routes (the `tensorfusion.errors` family, FastAPI's
request validation, Starlette's routing) are mapped here, so that no client input ends in a
500 and no route formats an error itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from tensorfusion.api.field_errors import join_path
from tensorfusion.errors import (
    AllocationError,
    AlreadyExistsError,
    AnnotationError,
    ConfigError,
    ConflictError,
    FleetError,
    NotFoundError,
    QuantityError,
    UnavailableError,
    UnschedulableError,
)

KINDS: Final[Mapping[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "PayloadTooLarge",
    422: "Invalid",
    500: "Internal",
    503: "Unavailable",
}
UNSCHEDULABLE: Final = "Unschedulable"


class ApiError(HTTPException):
    """An error a route or middleware answers with directly. A Starlette HTTPException, so
    that FastAPI lets it through its body parsing untouched."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.field = field


def error_response(
    status: int,
    message: str,
    *,
    kind: str | None = None,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": kind or KINDS.get(status, "Error"), "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers)


def validation_field(loc: Sequence[int | str]) -> str:
    """`("body", "command", 1)` -> `command[1]`; parameters keep their origin (`path.name`)."""
    return join_path(list(loc[1:]) if loc and loc[0] == "body" else list(loc))


def _validation_response(errors: Sequence[Any]) -> JSONResponse:
    # A body that is not JSON, or not an object at all, is a bad request rather than a bad
    # value of one field.
    if any(e["type"] == "json_invalid" or tuple(e["loc"]) == ("body",) for e in errors):
        problem = errors[0]
        detail = problem.get("ctx", {}).get("error", problem["msg"])
        return error_response(400, f"the body must be a JSON object: {detail}")
    fields = [validation_field(e["loc"]) for e in errors]
    message = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, errors, strict=True))
    return error_response(422, message, field=fields[0] if len(fields) == 1 else None)


STATUSES: Final[tuple[tuple[type[Exception], int], ...]] = (
    (ConfigError, 422),
    (FleetError, 422),
    (AnnotationError, 422),
    (QuantityError, 422),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (ConflictError, 409),
    (AllocationError, 409),
    (UnschedulableError, 409),
    (UnavailableError, 503),
)
"""The status of each error of the `tensorfusion.errors` family a backend may raise."""


def _field(exc: Exception) -> str | None:
    if isinstance(exc, ConfigError | FleetError):
        return exc.field or None
    return exc.key if isinstance(exc, AnnotationError) else None


def _tensorfusion_response(exc: Exception) -> JSONResponse:
    status = next(status for kind, status in STATUSES if isinstance(exc, kind))
    if isinstance(exc, UnschedulableError):
        return error_response(status, str(exc), kind=UNSCHEDULABLE, extra={"diagnosis": exc.report})
    return error_response(status, str(exc), field=_field(exc))


def _http_response(exc: HTTPException) -> JSONResponse:
    message, field = str(exc.detail), None
    if isinstance(exc, ApiError):
        field = exc.field
    elif exc.status_code == 404:
        message = "no such route; the API is listed at /docs"
    elif exc.status_code == 405:
        message = f"method not allowed; allowed: {(exc.headers or {}).get('Allow', 'none')}"
    return error_response(exc.status_code, message, field=field, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _http_response(exc)

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _validation_response(exc.errors())

    async def on_ours(_request: Request, exc: Exception) -> Response:
        return _tensorfusion_response(exc)

    async def on_unexpected(_request: Request, _exc: Exception) -> Response:
        # The traceback goes to the server log (Starlette re-raises after answering);
        # the client gets the one shape, without internals.
        return error_response(500, "internal error; the server log has the details")

    handlers: dict[type[Exception], Callable[[Request, Exception], Any]] = {
        HTTPException: on_http,
        RequestValidationError: on_validation,
        Exception: on_unexpected,
    }
    handlers.update((kind, on_ours) for kind, _ in STATUSES)
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
