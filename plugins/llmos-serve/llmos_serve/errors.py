"""Errors answered in OpenAI's JSON shape: ``{"error": {message, type, param, code}}``.

Every 4xx/5xx of the server goes through :func:`error_response`, including
invalid parameters (400, never FastAPI's 422), unknown routes and methods.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos_serve.protocol import ErrorResponse

log = logging.getLogger("llmos.serve")

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",  # what OpenAI answers for a missing or wrong API key
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}

#: OpenAPI ``responses=`` for endpoints answering errors in OpenAI's shape
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 401, 404, 408, 413, 429, 503, 504)
}


class ApiError(Exception):
    """An error answered in OpenAI's JSON shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes; send a smaller request")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}}


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


def _param(loc: Any) -> str | None:
    parts = [str(p) for p in loc or () if p != "body"]
    return ".".join(parts) or None


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` in OpenAI's shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"Unknown request URL: {request.method} {request.url.path}. Please check the URL for typos."
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed for {request.url.path}."
        code = "unknown_url" if exc.status_code == 404 else None
        return error_response(exc.status_code, message, code=code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "the request body is not valid JSON", code="invalid_json")
        msgs = "; ".join(f"{_param(e.get('loc')) or 'body'}: {e.get('msg')}" for e in errors[:5])
        code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
        return error_response(400, msgs, param=_param(first.get("loc")), code=code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")
