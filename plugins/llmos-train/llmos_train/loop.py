"""The training loop, shared by the single-process step and the DDP workers.

The loop knows nothing about pipelines: it talks to the outside through a
:class:`TrainIO` (metrics, progress, stop requests, where checkpoints go). Per-step
cost is kept to what a hand-written loop does: no ``.item()`` (a device sync)
except on logging steps, no per-step writes.

Data order: blocks are visited in a permutation drawn from ``(seed, epoch)``;
every micro-batch takes the next ``batch_size`` indices of it (the *global*
batch), and DDP rank ``r`` of ``W`` trains on the ``r``-th slice of ``batch_size/W``.
So 1 process and W processes see the same global batches, and a resumed run
(which restores the cursor into the permutation) sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from llmos_train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llmos_train.config import TrainConfig
from llmos_train.optim import make_optimizer
from llmos_train.schedules import make_schedule


class TrainIO:
    """How the loop reports and is controlled. The default does nothing."""

    checkpoint_dir: Path | None = None
    resume: bool = False

    def log_train(self, step: int, metrics: dict[str, float]) -> None:  # noqa: D102
        pass

    def log_eval(self, step: int, metrics: dict[str, float]) -> None:  # noqa: D102
        pass

    def progress(self, advance: int, **fields: Any) -> None:  # noqa: D102
        pass

    def should_stop(self) -> bool:  # noqa: D102
        return False


@dataclass
class Dist:
    """Data-parallel coordinates (``world == 1``: a single process)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        return bool(self.all_reduce_sum(t).item() > 0)


@dataclass
class TrainResult:
    step: int
    stopped: str | None  # None (finished), "interrupted" or "early_stopping"
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # evaluations
    checkpoint: str | None = None


def model_width(model: torch.nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("hidden_size", "n_embd", "d_model"):
        if cfg is not None and isinstance(getattr(cfg, attr, None), int):
            return getattr(cfg, attr)
    return None


def lm_loss(model: torch.nn.Module, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy of a causal LM on blocks ``x`` (labels shifted, logits not copied).

    ``x`` of shape ``(batch, 2, block)`` holds token ids and labels (``-100``: no loss, e.g.
    prompts and padding of ``data.chat``); of shape ``(batch, block)``, every token is a label.
    """
    x, labels = (x[:, 0], x[:, 1]) if x.dim() == 3 else (x, x)
    logits = model(input_ids=x).logits
    targets = torch.empty_like(labels)
    targets[:, :-1] = labels[:, 1:]
    targets[:, -1] = -100
    return F.cross_entropy(
        logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-100, reduction=reduction
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, blocks: Any, batch_size: int, max_batches: int | None = None,
             dist: Dist | None = None) -> dict[str, float]:
    """Mean next-token loss and perplexity on ``blocks`` (sharded over DDP ranks)."""
    dist = dist or Dist()
    was_training = model.training
    model.eval()
    n = len(blocks)
    if max_batches is not None:
        n = min(n, max_batches * batch_size * dist.world)
    totals = torch.zeros(2, dtype=torch.float64)  # nll sum, token count
    for start in range(dist.rank * batch_size, n, batch_size * dist.world):
        x = torch.from_numpy(np.asarray(blocks[start:min(start + batch_size, n)], dtype=np.int64))
        totals[0] += lm_loss(model, x, reduction="sum").double()
        totals[1] += int((x[:, 1, 1:] != -100).sum()) if x.dim() == 3 else x.numel() - x.size(0)
    dist.all_reduce_sum(totals)
    if was_training:
        model.train()
    if totals[1] == 0:
        return {}
    loss = float(totals[0] / totals[1])
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


class _Batches:
    """The deterministic stream of global batches (see the module docstring)."""

    def __init__(self, blocks: Any, batch: int, seed: int, dist: Dist, epoch: int = 0, cursor: int = 0) -> None:
        if len(blocks) < batch:
            raise ValueError(
                f"the training split has {len(blocks)} blocks, fewer than batch_size={batch}: "
                f"lower batch_size or block_size, or use a larger corpus"
            )
        self.blocks, self.batch, self.seed, self.dist = blocks, batch, seed, dist
        self.local = batch // dist.world
        self.epoch, self.cursor = epoch, cursor
        self._perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.blocks))

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch > len(self._perm):
            self.epoch, self.cursor = self.epoch + 1, 0
            self._perm = self._permutation()
        idx = self._perm[self.cursor + self.dist.rank * self.local: self.cursor + (self.dist.rank + 1) * self.local]
        self.cursor += self.batch
        # sorted indices read a memory-mapped array sequentially; the order inside a batch does not matter
        return torch.from_numpy(np.asarray(self.blocks[np.sort(idx)], dtype=np.int64))


def train(
    model: torch.nn.Module,
    train_blocks: Any,
    val_blocks: Any,
    cfg: TrainConfig,
    io: TrainIO,
    *,
    seed: int,
    dist: Dist | None = None,
    ddp_model: torch.nn.Module | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns where it stopped and the last metrics.

    :param ddp_model: the ``DistributedDataParallel`` wrapper of ``model`` under DDP.
    """
    dist = dist or Dist()
    if cfg.batch_size % dist.world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {dist.world} DDP processes")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = ddp_model if ddp_model is not None else model
    optimizer = make_optimizer(cfg.optimizer, model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               settings=cfg.optimizer_config)
    fn = make_schedule(cfg.schedule, warmup=cfg.warmup_steps, total=cfg.max_steps, settings=cfg.schedule_config,
                       model_width=model_width(model))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, fn)

    step, epoch, cursor, saved_step = 0, 0, 0, -1
    best, bad_evals, history = math.inf, 0, []
    ckpt_dir = io.checkpoint_dir
    last = latest_checkpoint(ckpt_dir) if (io.resume and ckpt_dir is not None) else None
    if last is not None:
        st = load_checkpoint(last, model, optimizer, scheduler)
        step, epoch, cursor = st["step"], st["epoch"], st["cursor"]
        best, bad_evals, history = st["best"], st["bad_evals"], st["history"]
        saved_step = step
    else:
        torch.manual_seed(seed)
    batches = _Batches(train_blocks, cfg.batch_size, seed, dist, epoch, cursor)
    # early stopping keeps the best weights (in memory, and beside the checkpoints for a resumed run)
    keep_best = cfg.early_stopping_patience is not None and cfg.restore_best
    best_path = ckpt_dir / "best.safetensors" if (keep_best and ckpt_dir is not None) else None
    best_state: dict[str, torch.Tensor] | None = None
    if last is not None and best_path is not None and best_path.exists():
        from safetensors.torch import load_file

        best_state = load_file(str(best_path))

    def remember_best() -> None:
        nonlocal best_state
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if best_path is not None and dist.main:
            import os

            from safetensors.torch import save_file

            tmp = best_path.with_suffix(".tmp")
            save_file(best_state, str(tmp))
            os.replace(tmp, best_path)
    tokens_per_update = cfg.batch_size * cfg.grad_accum * (train_blocks.shape[-1] - 1)

    def loop_state() -> dict[str, Any]:
        return {"epoch": batches.epoch, "cursor": batches.cursor, "best": best, "bad_evals": bad_evals,
                "history": history}

    def checkpoint() -> str | None:
        if ckpt_dir is None or not dist.main:
            return None
        return str(save_checkpoint(ckpt_dir, step, model, optimizer, scheduler, loop_state(), cfg.keep_checkpoints))

    def run_eval() -> dict[str, float]:
        m = evaluate(model, val_blocks, max(1, cfg.batch_size // dist.world), cfg.eval_batches, dist)
        if m:
            m = {**m, "step": float(step)}
            history.append(m)
            io.log_eval(step, {k: v for k, v in m.items() if k != "step"})
        return m

    io.progress(step)
    net.train()
    stopped: str | None = None
    last_eval_step = -1
    loss_sum = torch.zeros(())
    window_n, window_t0 = 0, time.perf_counter()
    grad_norm: torch.Tensor | None = None
    while step < cfg.max_steps:
        # single process: check every step (an Event lookup); DDP: agree on it at logging steps
        if (dist.world == 1 or step % cfg.log_every == 0) and dist.any(io.should_stop()):
            stopped = "interrupted"
            break
        for micro in range(cfg.grad_accum):
            x = batches.next()
            if ddp_model is not None and micro < cfg.grad_accum - 1:
                with ddp_model.no_sync():
                    loss = lm_loss(net, x)
                    (loss / cfg.grad_accum).backward()
            else:
                loss = lm_loss(net, x)
                (loss / cfg.grad_accum if cfg.grad_accum > 1 else loss).backward()
            loss_sum += loss.detach()
        logging = (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps
        if cfg.clip_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        elif logging:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_n += 1
        if logging:
            loss_val = float(dist.all_reduce_sum(loss_sum.clone()).item()) / (window_n * cfg.grad_accum * dist.world)
            elapsed = time.perf_counter() - window_t0
            metrics = {
                "loss": loss_val,
                "lr": lr,
                "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "tokens_per_s": window_n * tokens_per_update / elapsed if elapsed > 0 else 0.0,
                "epoch": float(batches.epoch),
            }
            if dist.main:
                io.log_train(step, metrics)
            io.progress(window_n, loss=loss_val, tokens_per_s=metrics["tokens_per_s"])
            loss_sum.zero_()
            window_n, window_t0 = 0, time.perf_counter()
        if cfg.eval_every and step % cfg.eval_every == 0:
            m = run_eval()
            last_eval_step = step
            if m and cfg.early_stopping_patience is not None:
                if m["val_loss"] < best - cfg.early_stopping_min_delta:
                    best, bad_evals = m["val_loss"], 0
                    if keep_best:
                        remember_best()
                else:
                    bad_evals += 1
                    if bad_evals >= cfg.early_stopping_patience:
                        stopped = "early_stopping"
            elif m:
                best = min(best, m["val_loss"])
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            checkpoint()
            saved_step = step
        if stopped:
            break
    if window_n:
        io.progress(window_n)
    final: dict[str, float] = {}
    if stopped == "early_stopping" and keep_best and best_state is not None:
        model.load_state_dict(best_state)
        final = dict(min(history, key=lambda h: h["val_loss"]))
        final["best_step"] = final.pop("step")
    elif stopped != "interrupted":
        final = history[-1] if (last_eval_step == step and history) else run_eval()
    path = checkpoint() if saved_step != step else None
    if path is None and ckpt_dir is not None:
        found = latest_checkpoint(ckpt_dir)
        path = str(found) if found else None
    metrics = {k: v for k, v in final.items() if k != "step"}
    metrics["steps"] = float(step)
    return TrainResult(step=step, stopped=stopped, metrics=metrics, history=history, checkpoint=path)
