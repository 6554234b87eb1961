"""Several ``llmos serve`` replicas behind haproxy: the load balancer's configuration,
and a local cluster (replicas on loopback ports sharing one registry database and one
blob store, haproxy in front) that the scale-out test and ``benchmarks/bench_scale.py``
drive.

:func:`haproxy_config` is the configuration the README's "Scaling out" section shows:
requests spread over the replicas, haproxy's health check is ``GET /ready`` (a replica
enters the rotation once its model is loaded and leaves it when it stops being ready or
dies), and a request that never reached a replica, or got no response at all (a replica
killed mid-request), is sent to another one (``retry-on conn-failure empty-response``;
completions change no state, so re-sending one that got no answer is safe). What cannot
be retried — a stream whose first bytes were already forwarded — reaches the client as a
cut connection, and haproxy answers 502/503 when no replica can take a request.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPLICA_HEADER = "X-Llmos-Replica"
VERSION_HEADER = "X-Llmos-Model-Version"


def haproxy_config(servers: list[tuple[str, str, int]], bind: str = "127.0.0.1:8080", *,
                   check_interval: str = "1s", stats_socket: str | None = None,
                   timeout_server: str = "300s") -> str:
    """An haproxy configuration balancing ``servers`` (``(name, host, port)``)."""
    lines = [
        "global",
        "    maxconn 4096",
    ]
    if stats_socket:
        lines.append(f"    stats socket {stats_socket} mode 600 level admin")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 300s",
        f"    timeout server {timeout_server}  # a long generation is one request",
        "    timeout http-keep-alive 30s",
        "    timeout check 5s      # a busy replica answers /ready late, not never",
        "    # re-send a request that never reached a replica or got no response at all (the",
        "    # replica died): completions change no state; once a response has started it is not retried",
        "    retry-on conn-failure empty-response",
        "    retries 3",
        "    option redispatch 1   # each retry goes to another replica",
        "",
        "frontend llmos",
        f"    bind {bind}",
        "    default_backend replicas",
        "",
        "backend replicas",
        "    balance leastconn",
        "    option httpchk",
        "    http-check send meth GET uri /ready   # 200 once the model is loaded; 503 while loading or draining",
        "    http-check expect status 200",
        f"    default-server check inter {check_interval} fall 3 rise 1",
    ]
    lines += [f"    server {name} {host}:{port}" for name, host, port in servers]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def haproxy_binary() -> str:
    import shutil

    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
    if path is None:
        raise FileNotFoundError("haproxy is not installed (apt-get install haproxy; see .ci/sysdeps.sh)")
    return path


@dataclass
class Replica:
    """One ``llmos serve`` process."""

    name: str
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready_version(self) -> str | None:
        import httpx

        try:
            r = httpx.get(self.url + "/ready", timeout=2)
        except httpx.HTTPError:
            return None
        return r.json().get("primary", {}).get("version") if r.status_code == 200 else None


@dataclass
class Cluster:
    """``n`` replicas of ``llmos serve MODEL`` on loopback and haproxy in front.

    ``env`` must point every replica at the same registry (``LLMOS_DATABASE_URL``) and
    blob store (``LLMOS_HOME``). Use as a context manager; :meth:`stop` ends everything.
    """

    model: str
    env: dict[str, str]
    n: int = 3
    poll_interval: float = 0.5
    serve_args: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="llmos-cluster-")))
    replicas: list[Replica] = field(default_factory=list)
    haproxy: subprocess.Popen | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_socket(self) -> Path:
        return self.workdir / "haproxy.sock"

    def start(self, timeout: float = 240.0) -> Cluster:
        """Start haproxy, then the replicas; return once every replica is in haproxy's rotation."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.replicas = [Replica(f"r{i}", free_port()) for i in range(self.n)]
        self.port = free_port()
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(haproxy_config([(r.name, "127.0.0.1", r.port) for r in self.replicas],
                                      f"127.0.0.1:{self.port}", check_interval="250ms",
                                      stats_socket=str(self.stats_socket)))
        self.haproxy = subprocess.Popen([haproxy_binary(), "-f", str(cfg), "-db"], stdout=subprocess.DEVNULL,
                                        stderr=open(self.workdir / "haproxy.log", "w"))
        llmos = str(Path(sys.executable).with_name("llmos"))
        for r in self.replicas:
            env = {**self.env, "LLMOS_REPLICA_ID": r.name}
            r.proc = subprocess.Popen(
                [llmos, "serve", self.model, "--port", str(r.port), "--poll-interval", str(self.poll_interval),
                 "--threads", "1", "--no-access-log", *self.serve_args],
                env=env, stdout=subprocess.DEVNULL, stderr=open(self.workdir / f"{r.name}.log", "w"),
            )
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if states and all(states.get(r.name) == "UP" for r in self.replicas):
                return self
            for r in self.replicas:
                if r.proc is not None and r.proc.poll() is not None:
                    raise RuntimeError(f"replica {r.name} exited: {self.log(r.name)[-2000:]}")
            if self.haproxy.poll() is not None:
                raise RuntimeError(f"haproxy exited: {self.log('haproxy')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not in rotation after {timeout:g} s: {states}")
            time.sleep(0.1)

    def log(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text()
        except OSError:
            return ""

    def server_states(self) -> dict[str, str]:
        """haproxy's view: replica name -> ``UP``/``DOWN``/... (from its stats socket)."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(self.stats_socket))
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        rows = data.decode().splitlines()
        if not rows or not rows[0].startswith("# "):
            return {}
        head = rows[0][2:].split(",")
        out = {}
        for row in rows[1:]:
            cols = dict(zip(head, row.split(","), strict=False))
            if cols.get("pxname") == "replicas" and cols.get("svname") not in ("BACKEND", None):
                out[cols["svname"]] = cols.get("status", "").split(" ")[0]
        return out

    def kill(self, name: str) -> tuple[float, float]:
        """SIGKILL replica ``name`` (no draining: its in-flight requests are cut);
        ``(signal sent, process gone)``: a request in flight on it is one that started
        before it was gone and ended after the signal (:func:`in_flight_at`)."""
        r = next(r for r in self.replicas if r.name == name)
        assert r.proc is not None
        t = time.monotonic()
        r.proc.kill()
        r.proc.wait(30)
        return t, time.monotonic()

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]

    def stop(self) -> None:
        for r in self.replicas:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.send_signal(signal.SIGINT)
        for r in self.replicas:
            if r.proc is not None:
                try:
                    r.proc.wait(30)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Record:
    start: float
    end: float
    status: int  # 0: no HTTP response (connection cut)
    version: str
    replica: str


class Load:
    """``clients`` threads sending ``total`` small greedy completions to ``url`` (or,
    with ``total=None``, until :meth:`stop`); :attr:`records` fills as they are answered."""

    def __init__(self, url: str, model: str, total: int | None, clients: int = 8, max_tokens: int = 4) -> None:
        self.url, self.model, self.total, self.clients, self.max_tokens = url, model, total, clients, max_tokens
        self.records: list[Record] = []
        self._next = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    @property
    def done(self) -> int:
        return len(self.records)

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Send no new request (those in flight finish)."""
        self._stop.set()

    def join(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def wait_for(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.done < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def _loop(self) -> None:
        import httpx

        words = ["the quick brown", "hello world, a", "numbers one two", "once upon a time"]
        with httpx.Client(timeout=120) as c:
            while True:
                with self._lock:
                    if self._stop.is_set() or (self.total is not None and self._next >= self.total):
                        return
                    i = self._next
                    self._next += 1
                t0 = time.monotonic()
                try:
                    r = c.post(self.url + "/v1/completions", json={
                        "model": self.model, "prompt": words[i % len(words)], "max_tokens": self.max_tokens,
                        "temperature": 0})
                    rec = Record(t0, time.monotonic(), r.status_code, r.headers.get(VERSION_HEADER, ""),
                                 r.headers.get(REPLICA_HEADER, ""))
                except httpx.HTTPError:
                    rec = Record(t0, time.monotonic(), 0, "", "")
                with self._lock:
                    self.records.append(rec)


def in_flight_at(rec: Record, killed: tuple[float, float]) -> bool:
    """Was ``rec`` in flight while a replica was being killed (``Cluster.kill``'s times)?"""
    return rec.start <= killed[1] and rec.end >= killed[0]


def version_mismatches(records: list[Record], moves: list[tuple[float, float, str, str]], first: str) -> int:
    """Answered requests whose version was not the alias target at some moment of the
    request. ``moves``: ``(started, every replica switched, old, new)`` per alias move."""
    bad = 0
    for rec in records:
        if rec.status != 200:
            continue
        target = first
        allowed = set()
        for a, b, old, new in moves:
            if b < rec.start:
                target = new
            elif a <= rec.end:
                allowed.update({old, new})
        allowed.add(target)
        bad += rec.version not in allowed
    return bad


def promote_and_wait(cluster: Cluster, source: str, expected: str, *, via_cli: bool = True,
                     registry: Any = None, alias: str = "production",
                     timeout: float = 120) -> tuple[float, float, float]:
    """Move the alias (``llmos deploy promote SOURCE`` in a process, or ``registry.set_alias``)
    and wait until every live replica reports ``expected``: ``(started, alias moved, all switched)``."""
    a = time.monotonic()
    if via_cli:
        llmos = str(Path(sys.executable).with_name("llmos"))
        r = subprocess.run([llmos, "deploy", "promote", source, "--to", alias], env=cluster.env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"llmos deploy promote failed: {r.stderr.strip()}")
    else:
        name, _, number = source.partition(":")
        registry.set_alias(name, alias, int(number))
    moved = time.monotonic()
    deadline = moved + timeout
    while any(r.ready_version() != expected for r in cluster.live()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every replica serves {expected} {timeout:g} s after the promote")
        time.sleep(0.02)
    return a, moved, time.monotonic()
