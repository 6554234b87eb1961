"""Operations endpoints: liveness, readiness, Prometheus metrics, engine statistics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from llmos_serve.errors import error_response
from llmos_serve.protocol import ErrorResponse

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"model": ErrorResponse}})
async def ready(request: Request) -> Any:
    """Readiness: the model is loaded and requests are accepted."""
    st = request.app.state.llmos
    pool = st.pool
    if st.draining:
        return error_response(503, "the server is shutting down", headers={"Retry-After": "2"})
    if not pool.ready.is_set():
        msg = pool.load_error or "the model is still loading"
        return error_response(503, msg, headers={"Retry-After": "2"})
    return {"status": "ready", **pool.serving()}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (text format); with several workers, the totals of all."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(request.app.state.llmos.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Engine statistics per loaded version (batch sizes, queue, device) of this process, and
    the base models shared by adapter versions (each loaded once)."""
    pool = request.app.state.llmos.pool
    return {"serving": pool.serving(), "engines": [e.stats() for e in pool.engines()], "bases": pool.bases.stats()}
