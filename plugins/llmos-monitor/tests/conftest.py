"""Fixtures of the monitor tests: a real registry with models and runs, a pipeline
step that logs known metrics, and helpers to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from llmos import hookimpl

LLMOS = str(Path(sys.executable).parent / "llmos")


def train_loss(step: int) -> float:
    """Values that only survive a round trip if every bit is kept."""
    return 1.0 / (step + 3) + 0.1 + 0.2


def lr(step: int) -> float:
    return 3e-4 * min(1.0, step / 4)


class FakeTrainConfig(BaseModel):
    steps: int = 12
    eval_every: int = 4
    sleep_s: float = 0.0


class FakeTrain:
    """A training step that logs known metrics through the real RunContext."""

    def __init__(self, config: FakeTrainConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, float]:
        for step in range(1, self.config.steps + 1):
            ctx.log_metrics(step, {"loss": train_loss(step), "lr": lr(step), "tokens_per_s": 1000.0 + step})
            if step % self.config.eval_every == 0:
                ctx.log_metrics(step, {"val_loss": 2.0 / step, "val_ppl": 2.0 ** (2.0 / step)}, kind="eval")
            if self.config.sleep_s:
                time.sleep(self.config.sleep_s / self.config.steps)
        return {"steps": float(self.config.steps)}


class FakeTrainPlugin:
    """A test plugin providing ``optimizer.fake-train``."""

    LLMOS_API = 2

    @hookimpl
    def llmos_register_optimizer_steps(self, register: Any) -> None:
        register("fake-train", FakeTrain, config=FakeTrainConfig, description="logs known metrics")


def write_pipeline(path: Path, steps: int = 12, sleep_s: float = 0.0, extra: str = "", first: str = "") -> Path:
    path.write_text(
        f"""
[pipeline]
name = "monitored"
{first}

[[stages]]
id = "train"
use = "optimizer.fake-train"
config = {{ steps = {steps}, sleep_s = {sleep_s} }}
{extra}
"""
    )
    return path


@pytest.fixture
def monitor_manager(plugin_manager: Any) -> Any:
    """The isolated plugin manager with llmos-monitor and the fake trainer registered."""
    import llmos_monitor.plugin

    plugin_manager.register(llmos_monitor.plugin, name="llmos-monitor")
    plugin_manager.register(FakeTrainPlugin(), name="fake-train")
    return plugin_manager


@pytest.fixture
def run_pipeline(monitor_manager: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run_pipeline(steps=..., sleep_s=..., extra=...)`` runs the real pipeline runner."""
    from llmos.pipeline import load_pipeline
    from llmos.pipeline.runner import run_pipeline as _run

    monkeypatch.setenv("LLMOS_MONITOR_INTERVAL", "0.05")

    def go(steps: int = 12, sleep_s: float = 0.0, extra: str = "", first: str = "") -> Any:
        path = write_pipeline(tmp_path / f"p{time.monotonic_ns()}.toml", steps, sleep_s, extra, first)
        result = _run(load_pipeline(path, manager=monitor_manager), manager=monitor_manager, handle_sigint=False)
        assert result.status == "completed", result.error
        return result

    return go


def expected_points(steps: int = 12, eval_every: int = 4) -> list[tuple[str, int, str, float]]:
    out = []
    for step in range(1, steps + 1):
        out += [("train", step, "loss", train_loss(step)), ("train", step, "lr", lr(step)),
                ("train", step, "tokens_per_s", 1000.0 + step)]
        if step % eval_every == 0:
            out += [("eval", step, "val_loss", 2.0 / step), ("eval", step, "val_ppl", 2.0 ** (2.0 / step))]
    return out


def cli(*args: str, home: Path | None = None, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``llmos`` in a fresh process (only this repo's monitor plugin loaded)."""
    env = dict(os.environ, LLMOS_PLUGINS="llmos-monitor,llmos-registry", COLUMNS="200", **(env or {}))
    if home is not None:
        env["LLMOS_HOME"] = str(home)
    cp = subprocess.run([LLMOS, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert cp.returncode == 0, f"llmos {' '.join(args)} failed ({cp.returncode}):\n{cp.stdout}\n{cp.stderr}"
    return cp


def invoke(*args: str, ok: bool = True) -> Any:
    """Run ``llmos monitor ...``/``llmos ui`` in this process (click's runner) under a root
    group that turns LlmosError into ``Error: ...`` exactly like ``llmos``'s own."""
    from click.testing import CliRunner

    from llmos.cli import LazyGroup
    from llmos_monitor.cli import monitor, ui

    root = LazyGroup(name="llmos")
    root.add_command(monitor)
    root.add_command(ui)
    result = CliRunner().invoke(root, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, f"llmos {' '.join(args)} failed ({result.exit_code}):\n{result.output}"
    return result


def cli_json(*args: str) -> Any:
    return json.loads(invoke(*args, "--json").output)


def make_models(reg: Any, tmp: Path) -> None:
    """tiny:1 → tiny:2 (child, one tensor changed), alias production → 1."""
    import numpy as np
    from safetensors.numpy import save_file

    d1, d2 = tmp / "v1", tmp / "v2"
    d1.mkdir()
    d2.mkdir()
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    save_file({"w": w, "b": np.zeros(4, dtype=np.float32)}, str(d1 / "model.safetensors"))
    (d1 / "config.json").write_text('{"n": 1}')
    save_file({"w": w * 2, "b": np.zeros(4, dtype=np.float32)}, str(d2 / "model.safetensors"))
    (d2 / "config.json").write_text('{"n": 1}')
    reg.register_version("tiny", d1, metrics={"val_ppl": 40.5})
    reg.register_version("tiny", d2, metrics={"val_ppl": 31.25}, parents=["tiny:1"], tags={"stage": "int8"})
    reg.set_alias("tiny", "production", 1)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UI:
    """``llmos ui`` in its own process on a free loopback port (``with UI(home) as ui: ui.get(path)``)."""

    def __init__(self, home: Path, *args: str) -> None:
        self.home, self.args, self.port = home, args, free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UI:
        env = dict(os.environ, LLMOS_HOME=str(self.home), LLMOS_PLUGINS="llmos-monitor,llmos-registry")
        env.pop("LLMOS_DATABASE_URL", None)
        self.proc = subprocess.Popen([LLMOS, "ui", "--port", str(self.port), *self.args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/api/runs")
                return self
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError(f"llmos ui did not start:\n{self.proc.stdout.read()}") from exc
                time.sleep(0.2)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """``(status, body)`` of a GET (4xx/5xx included)."""
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def h() -> Any:
    """These helpers (conftest modules cannot be imported under --import-mode=importlib)."""
    return sys.modules[__name__]
