"""ASGI middleware: API key, body limit, version header, access log, request metrics."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders

from llmos_serve.errors import BodyTooLarge, error_response

access_log = logging.getLogger("llmos.serve.access")

VERSION_HEADER = "X-Llmos-Model-Version"
#: which server process answered (``$LLMOS_REPLICA_ID``, else ``host-pid``): spreads and
#: failovers behind a load balancer show in the responses
REPLICA_HEADER = "X-Llmos-Replica"


def replica_id() -> str:
    import os
    import socket

    return os.environ.get("LLMOS_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}"


def bearer_matches(headers: list[tuple[bytes, bytes]] | Any, expected: str) -> bool:
    """True when the ``Authorization: Bearer <token>`` header carries ``expected``
    (compared in constant time)."""
    auth = next((v for k, v in headers if k == b"authorization"), b"").decode("latin-1")
    scheme, _, given = auth.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected.encode())


def needs_api_key(path: str) -> bool:
    """The OpenAI API (``/v1`` and below) needs the API key; ``/health``, ``/ready``,
    ``/metrics`` and ``/admin/*`` (its own token) do not."""
    return path == "/v1" or path.startswith("/v1/")


class ServeMiddleware:
    def __init__(self, app: Any, *, state: Any) -> None:
        self.app = app
        self.state = state
        self.replica = replica_id()

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
        replica = self.replica

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = MutableHeaders(scope=message)
                if VERSION_HEADER.lower() not in headers:
                    ref = info.get("version") or st.pool.current_ref()
                    if ref:
                        headers.append(VERSION_HEADER, ref)
                headers.append(REPLICA_HEADER, replica)
            await send(message)

        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        try:
            too_big = length is not None and int(length) > limit
        except ValueError:
            too_big = False
        try:
            key = st.config.api_key
            if key and needs_api_key(scope.get("path", "")) and not bearer_matches(scope.get("headers", []), key):
                resp = error_response(
                    401, "missing or wrong API key: send 'Authorization: Bearer <key>' with the key the server "
                    "was started with (--api-key or $LLMOS_API_KEY)",
                    code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"},
                )
                await resp(scope, receive, send_wrapper)
                return
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
