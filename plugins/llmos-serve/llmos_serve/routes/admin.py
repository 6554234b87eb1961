"""Admin endpoints (``--admin-token``): move an alias, reload the served versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from llmos.sdk import ConflictError, LlmosError, NotFoundError

from llmos_serve.errors import ApiError
from llmos_serve.middleware import bearer_matches
from llmos_serve.protocol import AliasRequest, ErrorResponse


def check_admin(request: Request) -> None:
    token = request.app.state.llmos.config.admin_token
    if not token:
        raise ApiError(
            403, "admin endpoints are disabled: start the server with --admin-token TOKEN "
            "(or $LLMOS_ADMIN_TOKEN)", code="admin_disabled",
        )
    if not bearer_matches(request.scope.get("headers", []), token):
        raise ApiError(
            401, "missing or wrong admin token: send 'Authorization: Bearer <token>'",
            code="invalid_token", headers={"WWW-Authenticate": "Bearer"},
        )


router = APIRouter(
    prefix="/admin", tags=["admin"], dependencies=[Depends(check_admin)],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)


def _llmos_error(exc: LlmosError) -> ApiError:
    status = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
    return ApiError(status, exc.message)


@router.post("/alias")
async def admin_alias(body: AliasRequest, request: Request) -> dict[str, Any]:
    """Point ``model@alias`` at a version (loads it first), then switch at once."""
    pool = request.app.state.llmos.pool
    try:
        result = await run_in_threadpool(pool.set_alias, body.alias, body.version, body.model)
    except LlmosError as exc:
        raise _llmos_error(exc) from exc
    return {**result, "serving": pool.serving()}


@router.post("/reload")
async def admin_reload(request: Request) -> dict[str, Any]:
    """Re-resolve aliases now and reload the served versions from the registry."""
    pool = request.app.state.llmos.pool
    try:
        switches = await run_in_threadpool(pool.refresh, True)
    except LlmosError as exc:
        raise _llmos_error(exc) from exc
    return {"reloaded": [{"spec": s, "old": o, "new": n} for s, o, n in switches], "serving": pool.serving()}
