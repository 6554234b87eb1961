"""A small real plugin for the runner tests: steps that count, checkpoint, register
files and record lifecycle hooks. Used in-process (registered in code) and from the
subprocess script of the Ctrl-C test."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmos import hookimpl

LLMOS_API = 2


class NumbersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 8


class NumbersStep:
    def __init__(self, config: NumbersConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        import random

        ctx.artifacts["numbers"] = [random.random() for _ in range(self.config.n)]
        return {"count": self.config.n, "first": ctx.artifacts["numbers"][0]}


class CountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = 20
    lr: float = 0.5
    fail_at: int | None = None
    stop_at: int | None = None  # ask the run to stop (as Ctrl-C does) at this step
    sleep: float = 0.0
    hub_token: str = ""  # secrets a real step may take: never stored (tests of llmos.redact)
    db_url: str = ""


class CountStep:
    """A deterministic 'training loop': x ← x − lr·(x − target) with a random target
    per step from a seeded stream; checkpoints after every step, resumes from it."""

    def __init__(self, config: CountConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        import random

        cfg = self.config
        ckpt = ctx.checkpoint_dir() / "state.json"
        step, x, rng_state = 0, 0.0, None
        if ctx.resume and ckpt.exists():
            saved = json.loads(ckpt.read_text())
            step, x = saved["step"], saved["x"]
            rng_state = (saved["rng"][0], tuple(saved["rng"][1]), saved["rng"][2])
        rng = random.Random(ctx.seed)
        if rng_state is not None:
            rng.setstate(rng_state)
        with ctx.progress(cfg.steps, "count", unit="step") as bar:
            bar.update(step)
            while step < cfg.steps:
                if ctx.should_stop:
                    break
                if cfg.fail_at is not None and step + 1 == cfg.fail_at and not ctx.resume:
                    raise RuntimeError(f"boom at step {step + 1}")
                target = rng.random()
                x = x - cfg.lr * (x - target)
                step += 1
                ctx.log_metrics(step, {"loss": (x - 0.5) ** 2, "x": x})
                st = rng.getstate()
                ckpt.write_text(json.dumps({"step": step, "x": x, "rng": [st[0], list(st[1]), st[2]]}))
                bar.update(1, loss=(x - 0.5) ** 2)
                if cfg.stop_at is not None and step == cfg.stop_at and not ctx.resume:
                    print("STOP-POINT", flush=True)
                    ctx.stop_event.set()
                if cfg.sleep:
                    time.sleep(cfg.sleep)
        ctx.log_metrics(step, {"val_loss": (x - 0.5) ** 2}, kind="eval")
        ctx.artifacts["metrics"] = {"val_loss": (x - 0.5) ** 2, "steps": float(step)}
        ctx.artifacts["lineage"] = {"method": "count", "settings": {"lr": cfg.lr}}
        return {"x": x, "steps": step}


class SaveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = "trained"


class SaveStep:
    """Writes the state as a real safetensors file and registers it."""

    def __init__(self, config: SaveConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        import numpy as np
        from safetensors.numpy import save_file

        out = Path(ctx.workdir) / f"model-{ctx.stage.id}.safetensors"
        x = float(ctx.artifacts.get("metrics", {}).get("val_loss", 0.0))
        save_file({"w": np.full((4, 4), x, dtype=np.float32)}, str(out))
        v = ctx.register_version(out, metrics={"val_loss": x}, tags={"stage": self.config.tag})
        ctx.artifacts["model_version"] = v.ref
        return {"version": v.ref}


class Recorder:
    """Records every lifecycle hook call (a monitoring plugin)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def llmos_before_run(self, ctx):
        self.calls.append(("run_start", ctx.run_id))

    @hookimpl
    def llmos_before_stage(self, stage):
        self.calls.append(("before", stage.id))

    @hookimpl
    def llmos_after_stage(self, stage, result, duration_s):
        self.calls.append(("after", stage.id))

    @hookimpl
    def llmos_on_stage_error(self, stage, error):
        self.calls.append(("error", stage.id, type(error).__name__))

    @hookimpl
    def llmos_after_run(self, ctx, status, error):
        self.calls.append(("run_end", status))

    @hookimpl
    def llmos_after_train_step(self, step):
        self.calls.append(("train_step", step))

    @hookimpl
    def llmos_after_version_registered(self, version):
        self.calls.append(("registered", version.ref))


@hookimpl
def llmos_register_data_steps(register):
    register("numbers", NumbersStep, config=NumbersConfig, description="random numbers")


@hookimpl
def llmos_register_optimizer_steps(register):
    register("count", CountStep, config=CountConfig, description="a deterministic toy loop")


@hookimpl
def llmos_register_model_steps(register):
    register("save", SaveStep, config=SaveConfig, description="register a safetensors file")


PIPELINE = """
[pipeline]
name = "toy"
seed = 11

[[stages]]
use = "data.numbers"

[[stages]]
id = "train"
use = "optimizer.count"
[stages.config]
steps = 30

[[stages]]
use = "model.save"
"""
