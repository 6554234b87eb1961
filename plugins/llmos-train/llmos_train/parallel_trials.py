"""Grid-search trials in parallel processes (``optimizer.grid-search`` with ``parallel = N``).

At most ``min(N, os.cpu_count())`` trials run at once, each in its own process
(``spawn``: a fresh interpreter, no forked torch threads) with one torch thread
unless the trial sets ``threads``. Every trial is still a recorded child run: the
parent opens it, the worker trains a copy of the model with the same loop and seed
as a sequential trial (so the same settings give the same losses), writes its
checkpoints into the child's workdir and hands back what it logged, which the
parent records into the child run when the trial ends.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable


class _RecordingIO:
    """A TrainIO for a worker: remembers the logged points, checkpoints where the parent says."""

    def __init__(self, checkpoint_dir: str | None, resume: bool) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.resume = resume
        self.logged: list[tuple[str, int, dict[str, float]]] = []

    def log_train(self, step: int, metrics: dict[str, float]) -> None:
        self.logged.append(("train", step, dict(metrics)))

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.logged.append(("eval", step, dict(metrics)))

    def progress(self, advance: int, **fields: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def _train_trial(model: Any, train_blocks: Any, val_blocks: Any, settings: dict[str, Any], seed: int,
                 checkpoint_dir: str | None, resume: bool) -> dict[str, Any]:
    """Run in a worker process: train ``model`` with ``settings``; return metrics, checkpoint, log."""
    import torch

    from llmos_train.config import TrainConfig
    from llmos_train.loop import train

    cfg = TrainConfig.model_validate(settings)
    torch.set_num_threads(cfg.threads or 1)
    io = _RecordingIO(checkpoint_dir, resume)
    result = train(model, train_blocks, val_blocks, cfg, io, seed=seed)
    return {"metrics": result.metrics, "checkpoint": result.checkpoint, "logged": io.logged, "step": result.step,
            "stopped": result.stopped}


def workers(parallel: int) -> int:
    """Processes to use: ``parallel`` capped at the machine's cores."""
    return max(1, min(int(parallel), os.cpu_count() or 1))


def run_parallel(ctx: Any, trials: list[tuple[str, dict[str, Any]]], model: Any, train_blocks: Any, val_blocks: Any,
                 parallel: int, on_done: Callable[[str, dict[str, Any], Any, dict[str, Any]], None]) -> None:
    """Train ``trials`` (``(name, settings)``) in at most ``workers(parallel)`` processes;
    ``on_done(name, settings, child_ctx, outcome)`` runs in this process as each ends."""
    import copy
    import multiprocessing

    from llmos.sdk import METRICS, MODEL
    from llmos_train.config import TrainConfig

    pending = list(trials)
    running: dict[Any, tuple[str, dict[str, Any], Any, contextlib.ExitStack]] = {}
    with ProcessPoolExecutor(max_workers=workers(parallel), mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            while pending or running:
                while pending and len(running) < workers(parallel):
                    name, settings = pending.pop(0)
                    tcfg = TrainConfig.model_validate(settings)
                    stack = contextlib.ExitStack()
                    child = stack.enter_context(
                        ctx.child_run(name, {"trial": name, "settings": tcfg.model_dump(mode="json")}))
                    trial_model = copy.deepcopy(model)
                    MODEL.set(child, trial_model)
                    seed = tcfg.seed if tcfg.seed is not None else int(ctx.seed)
                    ckpt = child.checkpoint_dir()
                    fut = pool.submit(_train_trial, trial_model, train_blocks, val_blocks, settings, seed,
                                      str(ckpt) if ckpt is not None else None, bool(child.resume))
                    running[fut] = (name, settings, child, stack)
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    name, settings, child, stack = running.pop(fut)
                    with stack:
                        outcome = fut.result()
                        for kind, step, metrics in outcome["logged"]:
                            child.log_metrics(step, metrics, kind=kind)
                        METRICS.set(child, dict(outcome["metrics"]))
                    on_done(name, settings, child, outcome)
        except BaseException:
            for _, _, _, stack in running.values():
                with contextlib.suppress(Exception):
                    stack.close()
            raise
