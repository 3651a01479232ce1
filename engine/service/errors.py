"""Errors as HTTP responses: one body shape, one place that picks the status.

Every error response is `{"error": {"code", "message", "details"}}` (`ErrorBody`). `ApiError`
is what the service raises for a request it refuses; any other `AmpError` is mapped by class
in `STATUS_BY_ERROR`; request validation, unknown routes and wrong methods are rendered in the
same shape. Anything else is a bug: the request-context middleware logs its traceback and
answers 500 `internal_error` without internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import (
    AmpError,
    DeviceError,
    ImageReadError,
    ImageTooLargeError,
    ImmichError,
    IndexStoreError,
    InputError,
    ModelError,
    OptionError,
    TaskCursorError,
    TaskNotFoundError,
    TaskStoreError,
    UnsafePathError,
)


class ApiError(AmpError):
    """A request the service refuses, with its HTTP status and a stable machine code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(message)


# Most specific first: the first class the error is an instance of wins.
STATUS_BY_ERROR: tuple[tuple[type[AmpError], int, str], ...] = (
    (TaskNotFoundError, 404, "task_not_found"),
    (TaskCursorError, 400, "invalid_cursor"),
    (TaskStoreError, 503, "queue_unavailable"),
    (ImageTooLargeError, 422, "image_too_large"),
    (ImageReadError, 422, "not_an_image"),
    (UnsafePathError, 422, "unsafe_path"),
    (OptionError, 422, "invalid_option"),
    (InputError, 422, "invalid_input"),
    (ModelError, 503, "model_unavailable"),
    (DeviceError, 503, "device_unavailable"),
    (IndexStoreError, 503, "index_unavailable"),
    (ImmichError, 502, "immich_unavailable"),
    (AmpError, 422, "invalid_request"),
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def status_of(error: AmpError) -> tuple[int, str]:
    if isinstance(error, ApiError):
        return error.status, error.code
    for cls, status, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status, code
    return 422, "invalid_request"  # unreachable: AmpError closes the table


async def _amp_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AmpError)
    status, code = status_of(exc)
    if isinstance(exc, ApiError):
        return error_response(status, code, exc.message, exc.details, exc.headers)
    return error_response(status, code, str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(
            400,
            "malformed_json",
            "the request body is not valid JSON",
            [_detail(error) for error in errors],
        )
    return error_response(
        422,
        "validation_failed",
        "the request does not match the schema: " + "; ".join(_summary(e) for e in errors),
        [_detail(error) for error in errors],
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, code, message, None, exc.headers)


def _detail(error: Mapping[str, Any]) -> dict[str, Any]:
    # `input` is left out: it may be large, or hold what the client should not see echoed.
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg"), "type": error.get("type")}


def _summary(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location or 'body'}: {error.get('msg')}"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AmpError, _amp_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
