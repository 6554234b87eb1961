"""The optimizer and LR-schedule extension points (``llmos_register_optimizers``,
``llmos_register_lr_schedules``) with a real third-party plugin.

The plugin below (Lion, Chen et al. 2023, "Symbolic Discovery of Optimization
Algorithms", and a step-decay schedule) is written only against docs/hooks.md and the
README: it imports nothing from llmos-train. It is installed as a real distribution
(dist-info with an ``llmos`` entry point) in a temporary site directory, so the
pipeline process and the torchrun workers both find it by name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

PLUGIN = {
    "llmos_lion/__init__.py": '''
        """Lion and a step-decay LR schedule for llmos (hook module: imports only llmos)."""
        from llmos import hookimpl

        LLMOS_API = 2


        @hookimpl
        def llmos_register_optimizers(register):
            from llmos_lion.config import LionConfig

            register("lion", "llmos_lion.optim:make_lion", config=LionConfig,
                     description="Lion: sign of interpolated momentum (Chen et al. 2023)")


        @hookimpl
        def llmos_register_lr_schedules(register):
            from llmos_lion.config import StepDecayConfig

            register("step-decay", "llmos_lion.optim:step_decay", config=StepDecayConfig,
                     description="Linear warmup, then lr times gamma every `every` steps")
    ''',
    "llmos_lion/config.py": '''
        from pydantic import BaseModel, ConfigDict, Field


        class LionConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")
            betas: tuple[float, float] = (0.9, 0.99)


        class StepDecayConfig(BaseModel):
            model_config = ConfigDict(extra="forbid")
            every: int = Field(5, ge=1)
            gamma: float = Field(0.5, gt=0, le=1)
    ''',
    "llmos_lion/optim.py": '''
        import torch


        class Lion(torch.optim.Optimizer):
            def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
                super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

            @torch.no_grad()
            def step(self, closure=None):
                for group in self.param_groups:
                    b1, b2 = group["betas"]
                    for p in group["params"]:
                        if p.grad is None:
                            continue
                        state = self.state[p]
                        if not state:
                            state["exp_avg"] = torch.zeros_like(p)
                        m = state["exp_avg"]
                        p.mul_(1 - group["lr"] * group["weight_decay"])
                        update = (m * b1 + p.grad * (1 - b1)).sign_()
                        p.add_(update, alpha=-group["lr"])
                        m.mul_(b2).add_(p.grad, alpha=1 - b2)


        def make_lion(params, config):
            return Lion(params, betas=tuple(config.betas))


        def step_decay(config, *, warmup, total):
            def f(i):
                step = i + 1
                if warmup and step <= warmup:
                    return step / warmup
                return config.gamma ** ((step - warmup) // config.every)
            return f
    ''',
}


@pytest.fixture
def lion_site(installed_plugin) -> Path:
    return installed_plugin("llmos-lion", PLUGIN, "llmos_lion")


def _cli(*args: str, site: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LLMOS_HOME=str(home), PYTHONPATH=str(site))
    env.pop("LLMOS_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.mark.slow
def test_llmos_register_optimizers_and_lr_schedules_plugin_trains_resumes_and_runs_under_ddp(
        standard_plugins, llmos_home, lion_site) -> None:
    from llmos import hookimpl
    from llmos.pipeline import load_pipeline, run_pipeline
    from llmos.registry import open_registry

    manager = standard_plugins("llmos-data", "llmos-models", "llmos-train", "llmos-lion")
    reg = open_registry()
    sets = ["stages.train.config.optimizer=lion", "stages.train.config.schedule=step-decay",
            "stages.train.config.lr=1e-3", "stages.train.config.schedule_config={every = 4, gamma = 0.7}",
            "stages.train.config.warmup_steps=0", "stages.train.config.max_steps=12", "stages.train.config.log_every=1",
            "stages.train.config.checkpoint_every=5", "stages.train.config.eval_every=6"]
    pipe = load_pipeline(ROOT / "pipelines" / "tiny.toml", sets)
    train_cfg = pipe.stage("train").config
    assert (train_cfg.optimizer, train_cfg.schedule) == ("lion", "step-decay")
    assert train_cfg.optimizer_config == {"betas": [0.9, 0.99]}  # the plugin's defaults, recorded

    clean = run_pipeline(pipe, registry=reg)
    assert clean.status == "completed", clean.error
    lrs = [p["value"] for p in reg.run_metrics(clean.run_id, "lr")]
    assert lrs == pytest.approx([1e-3 * 0.7 ** (s // 4) for s in range(1, 13)])  # the plugin's schedule
    version = reg.resolve(clean.versions[0])
    assert version.lineage["settings"]["optimizer"] == "lion"
    assert version.metrics["val_ppl"] < 512  # it learned something (vocabulary 512)

    class CtrlCAtStep7:
        @hookimpl
        def llmos_after_train_step(self, ctx, step):
            if step == 7:
                ctx.stop_event.set()  # what the runner's SIGINT handler does

    manager.register(CtrlCAtStep7(), name="ctrl-c")
    first = run_pipeline(pipe, registry=reg)
    manager.unregister("ctrl-c")
    assert first.status == "interrupted"
    resumed = run_pipeline(pipe, resume=first.run_id, registry=reg)
    assert resumed.status == "completed", resumed.error

    def losses(run_id):
        return [(p["step"], p["value"]) for p in reg.run_metrics(run_id, "loss")]

    assert losses(first.run_id) == losses(clean.run_id)  # bit-identical, with Lion's state restored
    assert resumed.metrics["val_loss"] == clean.metrics["val_loss"]

    # 2 DDP workers (torchrun, fresh processes) resolve "lion" and "step-decay" by name themselves
    ddp = run_pipeline(pipe, registry=reg, nproc=2)
    assert ddp.status == "completed", ddp.error
    assert [v for _, v in losses(ddp.run_id)] == pytest.approx([v for _, v in losses(clean.run_id)], rel=1e-4)


def test_llmos_register_optimizers_unknown_name_is_a_located_check_error(lion_site, llmos_home) -> None:
    tiny = str(ROOT / "pipelines" / "tiny.toml")
    ok = _cli("run", tiny, "--check", "--set", "stages.train.config.optimizer=lion", site=lion_site, home=llmos_home)
    assert ok.returncode == 0, ok.stderr
    bad = _cli("run", tiny, "--check", "--set", "stages.train.config.optimizer=lions", site=lion_site,
               home=llmos_home)
    assert bad.returncode != 0
    assert "stages[2].config.optimizer" in bad.stderr
    assert "no optimizer named 'lions' (available optimizers: adam, adamw, lamb, lion, sgd;" in bad.stderr
    settings = _cli("run", tiny, "--check", "--set", "stages.train.config.optimizer=lion", "--set",
                    "stages.train.config.optimizer_config={momentum = 0.9}", site=lion_site, home=llmos_home)
    assert settings.returncode != 0 and "stages[2].config.optimizer_config" in settings.stderr
    assert "momentum" in settings.stderr


def test_llmos_register_lr_schedules_unknown_name_and_bad_settings_are_check_errors(lion_site, llmos_home) -> None:
    tiny = str(ROOT / "pipelines" / "tiny.toml")
    bad = _cli("run", tiny, "--check", "--set", "stages.train.config.schedule=cosinus", site=lion_site,
               home=llmos_home)
    assert bad.returncode != 0 and "stages[2].config.schedule" in bad.stderr
    assert "no lr schedule named 'cosinus' (available lr_schedules: constant, cosine, linear-warmup, noam, step-decay;" in bad.stderr
    gamma = _cli("run", tiny, "--check", "--set", "stages.train.config.schedule=step-decay", "--set",
                 "stages.train.config.schedule_config={gamma = 2.0}", site=lion_site, home=llmos_home)
    assert gamma.returncode != 0 and "gamma" in gamma.stderr
    listed = _cli("components", "--json", site=lion_site, home=llmos_home)
    assert listed.returncode == 0, listed.stderr
    assert "lion" in listed.stdout and "step-decay" in listed.stdout
    json.loads(listed.stdout)
