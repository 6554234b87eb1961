"""The FastAPI application: wires the routers, middleware, errors and state.

``create_app(config)`` builds it; ``app_from_env()`` is the factory uvicorn's
worker processes call (``--workers N``). The parts live in their own modules:
:mod:`~llmos_serve.routes` (endpoints), :mod:`~llmos_serve.sequences` (a request
→ engine sequences, pure), :mod:`~llmos_serve.state` (pool, metrics, notifier),
:mod:`~llmos_serve.middleware` and :mod:`~llmos_serve.errors`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from llmos.sdk import ValidationError

from llmos_serve import __version__
from llmos_serve.config import ServeConfig
from llmos_serve.errors import install_handlers
from llmos_serve.middleware import VERSION_HEADER, ServeMiddleware
from llmos_serve.pool import ModelPool
from llmos_serve.routes import admin, ops, openai
from llmos_serve.state import ServerState, build_pool

SETTINGS_ENV = "LLMOS_SERVE_SETTINGS"

__all__ = ["SETTINGS_ENV", "VERSION_HEADER", "app_from_env", "build_pool", "create_app"]


def create_app(config: ServeConfig, pool: ModelPool | None = None, *, state: ServerState | None = None) -> FastAPI:
    """Build the server app for ``config`` (the model loads when the app starts)."""
    st = state if state is not None else ServerState(config, pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st.notifier.start()
        if not st.pool.ready.is_set():
            st.pool.start(background=True)
        try:
            yield
        finally:
            st.notifier.stop()
            await run_in_threadpool(st.pool.close)

    app = FastAPI(
        title="llmos serve",
        version=__version__,
        description="OpenAI-compatible API of an llmos model version.",
        lifespan=lifespan,
    )
    app.state.llmos = st
    app.add_middleware(ServeMiddleware, state=st)
    install_handlers(app)
    routers = (openai.router, ops.router, admin.router)
    for router in routers:
        app.include_router(router)
    # the endpoint label of request metrics: known paths, everything else is "other"
    st.known_paths = {r.path for router in routers for r in router.routes if hasattr(r, "path")}
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come from ``$LLMOS_SERVE_SETTINGS``."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ValidationError(f"${SETTINGS_ENV} is not set: start the server with `llmos serve`")
    config = ServeConfig.model_validate_json(raw)
    from llmos_serve.logs import configure_logging, set_threads

    set_threads(config)
    configure_logging()
    return create_app(config)
