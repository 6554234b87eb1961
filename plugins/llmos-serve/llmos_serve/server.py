"""Running the app: in the foreground (``llmos serve``), with several worker
processes on one port, or in a background thread (pipelines, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.server import HANDLED_SIGNALS
from uvicorn.supervisors.multiprocess import Process

from llmos.sdk import LlmosError, ValidationError

from llmos_serve.config import ServeConfig
from llmos_serve.logs import configure_logging, set_threads
from llmos_serve.metrics import MULTIPROC_ENV
from llmos_serve.state import build_pool


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


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(config: ServeConfig) -> str | None:
    """The warning for a server reachable beyond this machine with no API key."""
    if config.api_key or _is_loopback(config.host):
        return None
    return (
        f"listening on {config.host} without an API key: anyone who can reach port {config.port} can use /v1/*; "
        f"pass --api-key KEY (or set $LLMOS_API_KEY), or listen on 127.0.0.1"
    )


class _Server(uvicorn.Server):
    """uvicorn's server, ending normally on SIGTERM/SIGINT.

    uvicorn drains, then re-raises the signal it caught, so the process dies by
    that signal: exit handlers (the monitor closing its run, buffered metrics)
    never run and the exit status is 143. Here the signal starts the same
    graceful shutdown (stop accepting, drain in-flight requests for at most
    ``--drain-timeout`` seconds, lifespan shutdown) and the process then ends
    normally, with status 0.
    """

    on_exit: Any = None

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            logging.getLogger("llmos.serve").info(
                "stopping (signal %d): finishing in-flight requests (at most %g s)", sig,
                self.config.timeout_graceful_shutdown or 0,
            )
        super().handle_exit(sig, frame)
        if self.on_exit is not None:
            self.on_exit()


class _WorkerProcess(Process):
    """A ``--workers`` process running :class:`_Server`."""

    @property
    def server(self) -> Any:
        if self._server is None:
            self._server = _Server(config=self.config)
        return self._server


def serve(config: ServeConfig) -> None:
    """Serve in the foreground until SIGTERM or Ctrl-C, then drain and return.

    The model reference is resolved first (a typo fails here with one line);
    the weights load after the port is open (``/ready`` says when).
    """
    from llmos_serve.app import SETTINGS_ENV, create_app
    from llmos_serve.state import ServerState

    configure_logging()
    if not config.model:
        raise ValidationError("no model to serve: pass MODEL_REF, e.g. llmos serve quickstart@production")
    state = ServerState(config) if config.workers == 1 else None
    pool = state.pool if state is not None else build_pool(config)
    pool.check()
    sock = _bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    log = logging.getLogger("llmos.serve")
    if (warning := exposure_warning(config)) is not None:
        log.warning("%s", warning)
    log.info("serving %s on http://%s:%d (workers: %d)", config.model, host, port, config.workers)
    common = {"log_level": "info", "access_log": False, "timeout_graceful_shutdown": config.drain_timeout}
    if state is not None:
        set_threads(config)
        app = create_app(config, state=state)
        server = _Server(uvicorn.Config(app, **common))
        server.on_exit = lambda: setattr(state, "draining", True)
        pool.on_load_error = lambda: setattr(server, "should_exit", True)  # fail fast, with one line
        server.run(sockets=[sock])
        if pool.load_error:
            raise LlmosError(f"could not load {config.model}: {pool.load_error}")
        return
    import shutil
    import tempfile

    from uvicorn.supervisors import multiprocess

    metrics_dir = tempfile.mkdtemp(prefix="llmos-serve-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # the workers add up their metrics there
    os.environ[SETTINGS_ENV] = config.model_dump_json()
    uv = uvicorn.Config(
        "llmos_serve.app:app_from_env", factory=True, workers=config.workers, host=host, port=port, **common
    )
    multiprocess.Process = _WorkerProcess  # workers that drain and exit 0 on SIGTERM
    try:
        multiprocess.Multiprocess(uv, sockets=[sock]).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class BackgroundServer:
    """A server in a thread of this process (pipelines, tests, benchmarks).

    ``port=0`` picks a free port; :attr:`url` is the base URL once started::

        with BackgroundServer(ServeConfig(model="quickstart@production", port=0)) as srv:
            httpx.get(srv.url + "/v1/models")
    """

    def __init__(self, config: ServeConfig) -> None:
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
        if (warning := exposure_warning(config)) is not None:
            logging.getLogger("llmos.serve").warning("%s", warning)

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
