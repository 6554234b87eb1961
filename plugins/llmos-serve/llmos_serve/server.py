"""Running the app: in the foreground (``llmos serve``), with several worker
processes on one port, or in a background thread (pipelines, tests, benchmarks)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from llmos.errors import LlmosError, ValidationError

from llmos_serve.config import ServeConfig

_configured = False


def configure_logging(level: int = logging.INFO) -> None:
    """Send ``llmos.serve`` logs (including the access log) to stderr, once."""
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("llmos.serve")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def set_threads(config: ServeConfig) -> None:
    """torch intra-op threads for this server process: ``config.threads``, or the
    cores divided between workers. Oversubscribed threads spin and slow every step."""
    if config.threads is None and config.workers == 1:
        return
    import torch

    torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // config.workers))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP proto: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValidationError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServeConfig) -> None:
    """Serve in the foreground until interrupted.

    The model reference is resolved first (a typo fails here with one line);
    the weights load after the port is open (``/ready`` says when).
    """
    import uvicorn

    from llmos_serve.app import SETTINGS_ENV, build_pool, create_app

    configure_logging()
    if not config.model:
        raise ValidationError("no model to serve: pass MODEL_REF, e.g. llmos serve quickstart@production")
    holder: dict[str, Any] = {}
    pool = build_pool(config, holder)
    pool.check()
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    log = logging.getLogger("llmos.serve")
    log.info("serving %s on http://%s:%d (workers: %d)", config.model, host, port, config.workers)
    common = {"log_level": "info", "access_log": False, "timeout_graceful_shutdown": 10}
    if config.workers == 1:
        set_threads(config)
        app = create_app(config, pool=pool)
        server = uvicorn.Server(uvicorn.Config(app, **common))
        pool.on_load_error = lambda: setattr(server, "should_exit", True)  # fail fast, with one line
        server.run(sockets=[sock])
        if pool.load_error:
            raise LlmosError(f"could not load {config.model}: {pool.load_error}")
        return
    os.environ[SETTINGS_ENV] = config.model_dump_json()
    uv = uvicorn.Config(
        "llmos_serve.app:app_from_env", factory=True, workers=config.workers, host=host, port=port, **common
    )
    from uvicorn.supervisors import Multiprocess

    Multiprocess(uv, sockets=[sock]).run()


class BackgroundServer:
    """A server in a thread of this process (pipelines, tests, benchmarks).

    ``port=0`` picks a free port; :attr:`url` is the base URL once started::

        with BackgroundServer(ServeConfig(model="quickstart@production", port=0)) as srv:
            httpx.get(srv.url + "/v1/models")
    """

    def __init__(self, config: ServeConfig) -> None:
        import uvicorn

        from llmos_serve.app import create_app

        self.config = config
        self.app = create_app(config)
        self.pool = self.app.state.llmos.pool
        self._sock = _bind(config.host, config.port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 120.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, name="llmos-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not (self.server.started and self.pool.ready.is_set()):
            if self.pool.load_error:
                self.stop()
                raise LlmosError(f"the server could not load {self.config.model}: {self.pool.load_error}")
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise LlmosError(f"the server did not start within {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
