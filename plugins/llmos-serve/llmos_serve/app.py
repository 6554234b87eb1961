"""The FastAPI application: OpenAI-compatible endpoints, health, metrics, admin.

``create_app(config)`` builds it; ``app_from_env()`` is the factory uvicorn's
worker processes call (``--workers N``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos.errors import ConflictError, LlmosError, NotFoundError, ValidationError
from llmos_serve import __version__
from llmos_serve.config import ServeConfig
from llmos_serve.engine import EngineStopped, QueueFull, SamplingParams, Sequence
from llmos_serve.metrics import ServeMetrics
from llmos_serve.pool import Lease, ModelPool, NotReady
from llmos_serve.protocol import (
    AliasRequest,
    ChatCompletionRequest,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
)

log = logging.getLogger("llmos.serve")
access_log = logging.getLogger("llmos.serve.access")

VERSION_HEADER = "X-Llmos-Model-Version"
SETTINGS_ENV = "LLMOS_SERVE_SETTINGS"

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
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


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    c: {"model": ErrorResponse} for c in (400, 404, 408, 413, 422, 429, 503, 504)
}


# ---------------------------------------------------------------------------
# notifications to plugins (monitoring) off the event loop
# ---------------------------------------------------------------------------


class Notifier:
    """Calls ``llmos_after_request`` / ``llmos_after_metrics`` from a thread."""

    def __init__(self, metrics: ServeMetrics, pool: ModelPool, interval: float = 10.0) -> None:
        self.q: queue.Queue[tuple[dict[str, Any], dict[str, float]] | None] = queue.Queue(maxsize=10000)
        self.metrics, self.pool, self.interval = metrics, pool, interval
        self._thread = threading.Thread(target=self._run, name="llmos-serve-notify", daemon=True)
        self._step = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``timeout``), then end the thread."""
        try:
            self.q.put(None, timeout=timeout)
        except queue.Full:
            return
        if self._thread.is_alive():
            self._thread.join(timeout)

    def request_served(self, request: dict[str, Any], metrics: dict[str, float]) -> None:
        try:
            self.q.put_nowait((request, metrics))
        except queue.Full:  # monitoring must never slow serving down
            pass

    def _manager(self) -> Any:
        try:
            from llmos.plugins import get_manager

            return get_manager()
        except Exception:  # noqa: BLE001
            return None

    def _run(self) -> None:
        next_metrics = time.monotonic() + self.interval
        while True:
            try:
                item = self.q.get(timeout=max(0.05, next_metrics - time.monotonic()))
            except queue.Empty:
                item = ()  # type: ignore[assignment]
            if item is None:
                return
            manager = self._manager()
            if item and manager is not None:
                manager.notify("llmos_after_request", request=item[0], metrics=item[1])
            if time.monotonic() >= next_metrics:
                next_metrics = time.monotonic() + self.interval
                if manager is not None:
                    self._step += 1
                    engines = self.pool.engines()
                    manager.notify(
                        "llmos_after_metrics",
                        source="serve",
                        step=self._step,
                        metrics={
                            "requests_running": float(sum(e.num_running for e in engines)),
                            "requests_waiting": float(sum(e.num_waiting for e in engines)),
                            "generation_tokens_per_s": self.metrics.tokens_per_second(),
                        },
                    )


# ---------------------------------------------------------------------------
# ASGI middleware: body limit, version header, access log, request metrics
# ---------------------------------------------------------------------------


class ServeMiddleware:
    def __init__(self, app: Any, *, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        st = self.state
        t0 = time.perf_counter()
        info: dict[str, Any] = {}
        scope["llmos.info"] = info
        status: list[int] = [0]
        limit = st.config.max_body_bytes

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = MutableHeaders(scope=message)
                if VERSION_HEADER.lower() not in headers:
                    ref = info.get("version") or st.pool.current_ref()
                    if ref:
                        headers.append(VERSION_HEADER, ref)
            await send(message)

        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        try:
            too_big = length is not None and int(length) > limit
        except ValueError:
            too_big = False
        try:
            if too_big:
                resp = error_response(413, f"request body is larger than {limit} bytes; send a smaller request")
                await resp(scope, receive, send_wrapper)
                return
            received = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge(limit)
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            self._record(scope, info, status[0] or 500, time.perf_counter() - t0)

    def _record(self, scope: dict[str, Any], info: dict[str, Any], status: int, elapsed: float) -> None:
        st = self.state
        path = scope.get("path", "")
        endpoint = path if path in st.known_paths else "other"
        st.metrics.http.labels(endpoint, str(status)).inc()
        if status >= 400:
            st.metrics.errors.labels(str(status)).inc()
        if st.config.access_log:
            client = scope.get("client") or ("-", 0)
            extra = "".join(
                f" {k}={info[k]}" for k in ("version", "prompt_tokens", "completion_tokens") if k in info
            )
            access_log.info(
                '%s "%s %s" %d %.1fms%s', client[0], scope.get("method"), path, status, elapsed * 1000, extra
            )
        if path.startswith("/v1/") and scope.get("method") == "POST":
            metrics = {"latency_s": elapsed}
            for k in ("prompt_tokens", "completion_tokens", "time_to_first_token_s"):
                if k in info:
                    metrics[k] = float(info[k])
            st.notifier.request_served(
                {
                    "model": info.get("model", st.pool.name),
                    "version": info.get("version"),
                    "endpoint": path,
                    "status": status,
                    "stream": bool(info.get("stream", False)),
                },
                metrics,
            )


# ---------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------


class _State:
    def __init__(self, config: ServeConfig, pool: ModelPool) -> None:
        self.config = config
        self.pool = pool
        self.metrics = ServeMetrics(pool)
        self.notifier = Notifier(self.metrics, pool)
        self.created = int(time.time())
        self.known_paths: set[str] = set()


def build_pool(config: ServeConfig, metrics_holder: dict[str, Any] | None = None) -> ModelPool:
    holder = metrics_holder if metrics_holder is not None else {}
    return ModelPool(
        config.model,
        config.canary,
        config.canary_percent,
        engine_options={"max_batch_size": config.max_batch_size, "max_queue": config.max_queue},
        observer_factory=lambda loaded: holder["metrics"].observer(loaded) if "metrics" in holder else None,
        routing_seed=config.routing_seed,
        poll_interval=config.poll_interval,
    )


def create_app(config: ServeConfig, pool: ModelPool | None = None) -> FastAPI:
    """Build the server app for ``config`` (the model loads when the app starts)."""
    holder: dict[str, Any] = {}
    pool = pool or build_pool(config, holder)
    st = _State(config, pool)
    holder["metrics"] = st.metrics
    if pool.observer_factory is None:
        pool.observer_factory = st.metrics.observer

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        st.notifier.start()
        if not pool.ready.is_set():
            pool.start(background=True)
        try:
            yield
        finally:
            st.notifier.stop()
            await run_in_threadpool(pool.close)

    app = FastAPI(
        title="llmos serve",
        version=__version__,
        description="OpenAI-compatible API of an llmos model version.",
        lifespan=lifespan,
    )
    app.state.llmos = st
    app.add_middleware(ServeMiddleware, state=st)

    # -- errors -------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            return error_response(400, "the request body is not valid JSON", code="invalid_json")
        msgs = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in errors[:5]
        )
        return error_response(422, msgs, param=param, code="invalid_value")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")

    # -- models, health, metrics ---------------------------------------------------

    def _cards() -> list[ModelCard]:
        serving = pool.serving()
        cards = []
        for mid in pool.model_ids():
            version = serving["canary"]["version"] if pool.routes_to_canary(mid) else serving["primary"]["version"]
            loaded = pool.loaded(version)
            ctx = loaded.context_length if loaded is not None else None
            cards.append(ModelCard(id=mid, created=st.created, version=version, max_model_len=ctx))
        return cards

    @app.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def list_models() -> ModelList:
        """The model ids this server answers to."""
        return ModelList(data=_cards())

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=_ERROR_RESPONSES, tags=["openai"])
    async def get_model(model_id: str) -> ModelCard:
        """One model id."""
        for card in _cards():
            if card.id == model_id:
                return card
        raise ApiError(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], responses={503: {"model": ErrorResponse}})
    async def ready() -> Any:
        """Readiness: the model is loaded and requests are accepted."""
        if not pool.ready.is_set():
            msg = pool.load_error or "the model is still loading"
            return error_response(503, msg, headers={"Retry-After": "2"})
        return {"status": "ready", **pool.serving()}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics (text format)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(st.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats", tags=["ops"])
    async def stats() -> dict[str, Any]:
        """Engine statistics per loaded version (batch sizes, queue)."""
        return {"serving": pool.serving(), "engines": [e.stats() for e in pool.engines()]}

    # -- admin ---------------------------------------------------------------------

    def _check_admin(request: Request) -> None:
        token = config.admin_token
        if not token:
            raise ApiError(
                403, "admin endpoints are disabled: start the server with --admin-token TOKEN "
                "(or $LLMOS_ADMIN_TOKEN)", code="admin_disabled",
            )
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(
                401, "missing or wrong admin token: send 'Authorization: Bearer <token>'",
                code="invalid_token", headers={"WWW-Authenticate": "Bearer"},
            )

    def _llmos_error(exc: LlmosError) -> ApiError:
        status = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
        return ApiError(status, exc.message)

    _admin: dict[str, Any] = {
        "tags": ["admin"], "dependencies": [Depends(_check_admin)],
        "responses": {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
    }

    @app.post("/admin/alias", **_admin)
    async def admin_alias(body: AliasRequest) -> dict[str, Any]:
        """Point ``model@alias`` at a version (loads it first), then switch at once."""
        try:
            result = await run_in_threadpool(pool.set_alias, body.alias, body.version, body.model)
        except LlmosError as exc:
            raise _llmos_error(exc) from exc
        return {**result, "serving": pool.serving()}

    @app.post("/admin/reload", **_admin)
    async def admin_reload() -> dict[str, Any]:
        """Re-resolve aliases now and reload the served versions from the registry."""
        try:
            switches = await run_in_threadpool(pool.refresh, True)
        except LlmosError as exc:
            raise _llmos_error(exc) from exc
        return {"reloaded": [{"spec": s, "old": o, "new": n} for s, o, n in switches], "serving": pool.serving()}

    # -- generation -----------------------------------------------------------------

    @app.post(
        "/v1/completions", response_model=None, responses=_ERROR_RESPONSES, tags=["openai"],
    )
    async def completions(body: CompletionRequest, request: Request) -> Any:
        """Complete a prompt (OpenAI ``/v1/completions``); ``stream: true`` for SSE."""
        return await _generate(request, body, chat=False)

    @app.post(
        "/v1/chat/completions", response_model=None, responses=_ERROR_RESPONSES, tags=["openai"],
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """Answer a conversation (OpenAI ``/v1/chat/completions``); ``stream: true`` for SSE."""
        return await _generate(request, body, chat=True)

    async def _generate(request: Request, body: Any, *, chat: bool) -> Any:
        info: dict[str, Any] = request.scope.get("llmos.info", {})
        info["stream"] = body.stream
        if body.logprobs not in (None, False, 0):
            raise ApiError(400, "logprobs are not supported by this server; remove the field", param="logprobs")
        if not chat and body.suffix:
            raise ApiError(400, "suffix (insertion) is not supported by this server; remove the field", param="suffix")
        if chat and body.tools:
            raise ApiError(400, "tools are not supported by this server; remove the field", param="tools")
        try:
            lease = pool.acquire(body.model)
        except NotFoundError as exc:
            raise ApiError(404, exc.message, param="model", code="model_not_found") from exc
        except NotReady as exc:
            raise ApiError(503, exc.message, headers={"Retry-After": "2"}) from exc
        info["version"] = lease.ref
        info["model"] = lease.model.name  # the served name, never what a client typed
        handed_over = False
        seqs: list[Sequence] = []
        try:
            seqs, prompt_tokens, echo_texts = _build_sequences(lease, body, chat=chat)
            info["prompt_tokens"] = sum(len(s.prompt_ids) for s in seqs[:: body.n])
            loop = asyncio.get_running_loop()
            events: asyncio.Queue[tuple[str, Any, int]] = asyncio.Queue()
            for i, s in enumerate(seqs):
                s.stream = body.stream
                s.sink = lambda ev, i=i: loop.call_soon_threadsafe(events.put_nowait, (ev[0], ev[1], i))
            capacity = lease.engine.max_batch_size + lease.engine.max_queue
            if len(seqs) > capacity:
                raise ApiError(
                    400, f"this request asks for {len(seqs)} sequences (prompts x n); this server holds at most "
                    f"{capacity} at once: lower n or send fewer prompts", param="n",
                )
            try:
                lease.engine.submit(seqs)
            except QueueFull as exc:
                raise ApiError(
                    429, f"the server is busy ({exc}); retry after a second", code="queue_full",
                    headers={"Retry-After": "1"},
                ) from exc
            except EngineStopped as exc:
                raise ApiError(503, "the model version is being unloaded; retry", headers={"Retry-After": "1"}) from exc
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
            headers = {VERSION_HEADER: lease.ref}
            if body.stream:
                handed_over = True
                gen = _stream(request, lease, body, seqs, events, rid, chat, echo_texts, info)
                # a stream dropped before it ever started still frees its slots and its version
                weakref.finalize(gen, _abandon, list(seqs), lease)
                return StreamingResponse(
                    gen, media_type="text/event-stream",
                    headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                )
            await _wait_all(request, seqs, events)
            return JSONResponse(_final_body(lease, body, seqs, rid, chat, echo_texts, info), headers=headers)
        finally:
            if not handed_over:
                for s in seqs:
                    s.cancel()
                lease.release()

    def _abandon(seqs: list[Sequence], lease: Lease) -> None:
        for s in seqs:
            s.cancel()
        lease.release()

    def _build_sequences(lease: Lease, body: Any, *, chat: bool) -> tuple[list[Sequence], int, list[str]]:
        lm = lease.model
        tok = lm.tokenizer
        vocab = len(tok)
        if chat:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            try:
                text = lm.render_chat(messages)
            except Exception as exc:  # noqa: BLE001 - a template error is the request's fault
                raise ApiError(400, f"could not apply the chat template: {exc}", param="messages") from exc
            prompts = [tok(text).input_ids]
            echo_texts = [""]
        else:
            p = body.prompt
            if isinstance(p, str):
                prompts = [tok(p).input_ids]
            elif p and all(isinstance(x, int) for x in p):
                prompts = [list(p)]
            elif p and all(isinstance(x, str) for x in p):
                prompts = [tok(x).input_ids for x in p]
            elif p and all(isinstance(x, list) for x in p):
                prompts = [list(x) for x in p]
            else:
                raise ApiError(400, "prompt must not be empty", param="prompt")
            if len(prompts) > 16:
                raise ApiError(400, "at most 16 prompts per request", param="prompt")
            for ids in prompts:
                if any(not 0 <= t < vocab for t in ids):
                    raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
            echo_texts = [tok.decode(ids, skip_special_tokens=True) if body.echo else "" for ids in prompts]
        fallback = getattr(tok, "bos_token_id", None)
        if fallback is None:
            fallback = getattr(tok, "eos_token_id", None)
        for k, ids in enumerate(prompts):
            if not ids:
                if fallback is None:
                    raise ApiError(400, "prompt is empty; send some text", param="prompt")
                prompts[k] = [int(fallback)]
        ctx = lm.context_length
        limit = config.max_tokens_limit or ctx
        gen = lm.generation
        requested = getattr(body, "max_completion_tokens", None) or body.max_tokens
        longest = max(len(ids) for ids in prompts)
        if requested is None:
            if chat:
                requested = min(limit, max(1, ctx - longest))
            else:
                recorded = gen.get("max_tokens") or gen.get("max_new_tokens")
                requested = int(recorded) if isinstance(recorded, int) and recorded > 0 else config.default_max_tokens
                requested = min(requested, limit)
        if requested > limit:
            raise ApiError(
                400, f"max_tokens is too large: {requested}; this server allows at most {limit}",
                param="max_tokens", code="invalid_value",
            )
        if longest + requested > ctx:
            raise ApiError(
                400,
                f"This model's maximum context length is {ctx} tokens. However, you requested "
                f"{longest + requested} tokens ({longest} in the prompt, {requested} for the completion). "
                f"Please reduce the prompt or max_tokens.",
                param="messages" if chat else "prompt",
                code="context_length_exceeded",
            )
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        stop = [s for s in stop if s]
        def default(key: str, fallback: float) -> float:  # the model's recorded generation defaults
            value = gen.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback

        temperature = body.temperature if body.temperature is not None else default("temperature", 1.0)
        top_p = body.top_p if body.top_p is not None else default("top_p", 1.0)
        top_k = body.top_k if body.top_k is not None else int(default("top_k", 0))
        seqs = []
        for ids in prompts:
            for j in range(body.n):
                seed = None if body.seed is None else (body.seed + j) % (2**63)
                params = SamplingParams(
                    max_tokens=requested, temperature=temperature, top_p=top_p,
                    top_k=max(0, top_k), seed=seed, stop=stop,
                    presence_penalty=body.presence_penalty or 0.0, frequency_penalty=body.frequency_penalty or 0.0,
                )
                seqs.append(Sequence(list(ids), params))
        return seqs, sum(len(p) for p in prompts), echo_texts

    async def _wait_all(request: Request, seqs: list[Sequence], events: asyncio.Queue[Any]) -> None:
        deadline = time.monotonic() + config.timeout

        async def collect() -> None:
            left = len(seqs)
            while left:
                kind, _, _ = await events.get()
                if kind == "finish":
                    left -= 1

        async def disconnected() -> None:
            while not await request.is_disconnected():
                await asyncio.sleep(0.25)

        task = asyncio.ensure_future(collect())
        watch = asyncio.ensure_future(disconnected())
        try:
            done, _ = await asyncio.wait(
                {task, watch}, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watch.cancel()
            if not task.done():
                task.cancel()
        if task not in done:
            for s in seqs:
                s.cancel()
            if watch in done:
                raise ApiError(499, "client closed the request")
            raise ApiError(504, f"the request took longer than {config.timeout:g} s; ask for fewer tokens",
                           code="timeout")
        failed = [s for s in seqs if s.finish_reason == "error"]
        if failed:
            raise ApiError(500, f"generation failed: {failed[0].error}")
        if any(s.finish_reason == "cancelled" for s in seqs):
            raise ApiError(503, "the request was cancelled because the server is shutting down",
                           headers={"Retry-After": "1"})

    def _usage(seqs: list[Sequence], n: int) -> dict[str, int]:
        prompt = sum(len(s.prompt_ids) for s in seqs[::n])
        completion = sum(s.completion_tokens for s in seqs)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _final_body(
        lease: Lease, body: Any, seqs: list[Sequence], rid: str, chat: bool, echo: list[str], info: dict[str, Any]
    ) -> dict[str, Any]:
        usage = _usage(seqs, body.n)
        info["completion_tokens"] = usage["completion_tokens"]
        if seqs and seqs[0].t_first is not None:
            info["time_to_first_token_s"] = round(seqs[0].t_first - seqs[0].t_submit, 6)
        created = int(time.time())
        if chat:
            choices = [
                {"index": i, "message": {"role": "assistant", "content": s.text}, "logprobs": None,
                 "finish_reason": s.finish_reason}
                for i, s in enumerate(seqs)
            ]
            obj = "chat.completion"
        else:
            choices = [
                {"index": i, "text": echo[i // body.n] + s.text, "logprobs": None, "finish_reason": s.finish_reason}
                for i, s in enumerate(seqs)
            ]
            obj = "text_completion"
        return {"id": rid, "object": obj, "created": created, "model": body.model, "choices": choices,
                "usage": usage, "system_fingerprint": lease.ref}

    async def _stream(
        request: Request, lease: Lease, body: Any, seqs: list[Sequence], events: asyncio.Queue[Any],
        rid: str, chat: bool, echo: list[str], info: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        created = int(time.time())
        obj = "chat.completion.chunk" if chat else "text_completion"
        base = {"id": rid, "object": obj, "created": created, "model": body.model, "system_fingerprint": lease.ref}

        def chunk(index: int, text: str | None, finish: str | None, role: bool = False) -> bytes:
            if chat:
                delta: dict[str, Any] = {}
                if role:
                    delta["role"] = "assistant"
                if text is not None:
                    delta["content"] = text
                choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
            return b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n"

        deadline = time.monotonic() + config.timeout
        try:
            for i in range(len(seqs)):
                if chat:
                    yield chunk(i, "", None, role=True)
                elif body.echo and echo[i // body.n]:
                    yield chunk(i, echo[i // body.n], None)
            left = len(seqs)
            while left:
                try:
                    kind, payload, i = await asyncio.wait_for(events.get(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    err = {"error": {"message": f"the request took longer than {config.timeout:g} s",
                                     "type": "timeout_error", "param": None, "code": "timeout"}}
                    yield b"data: " + json.dumps(err).encode() + b"\n\n"
                    break
                if kind == "delta":
                    yield chunk(i, payload, None)
                elif kind == "finish":
                    left -= 1
                    seq: Sequence = payload
                    if seq.finish_reason == "error":
                        err = {"error": {"message": f"generation failed: {seq.error}", "type": "server_error",
                                         "param": None, "code": None}}
                        yield b"data: " + json.dumps(err).encode() + b"\n\n"
                    else:
                        yield chunk(i, None if chat else "", seq.finish_reason)
            usage = _usage(seqs, body.n)
            info["completion_tokens"] = usage["completion_tokens"]
            if seqs and seqs[0].t_first is not None:
                info["time_to_first_token_s"] = round(seqs[0].t_first - seqs[0].t_submit, 6)
            if body.stream_options is not None and body.stream_options.include_usage:
                yield b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            for s in seqs:  # a client that went away frees its slots at the next engine step
                s.cancel()
            lease.release()

    st.known_paths = {r.path for r in app.routes if hasattr(r, "path")}
    return app


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come from ``$LLMOS_SERVE_SETTINGS``."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ValidationError(f"${SETTINGS_ENV} is not set: start the server with `llmos serve`")
    config = ServeConfig.model_validate_json(raw)
    from llmos_serve.server import configure_logging, set_threads

    set_threads(config)

    configure_logging()
    return create_app(config)
