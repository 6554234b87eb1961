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

from llmos_models.lm import lm_loss

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
    device: str = "cpu"  # where collective tensors live (NCCL needs them on the GPU)
    fsdp: bool = False

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
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
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




@torch.no_grad()
def evaluate(model: torch.nn.Module, blocks: Any, batch_size: int, max_blocks: int | None = None,
             dist: Dist | None = None, *, device: str | None = None, dtype: Any = None) -> dict[str, float]:
    """Mean next-token loss and perplexity on the first ``max_blocks`` of ``blocks`` (all by
    default), sharded over DDP ranks. Which blocks count never depends on ``batch_size``.

    :param device: where the model is (default: its parameters' device).
    :param dtype: autocast dtype (``None``: float32).
    """
    from llmos.sdk import autocast

    dist = dist or Dist()
    device = device or str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    n = len(blocks)
    if max_blocks is not None:
        n = min(n, max_blocks)
    if n == 0:
        if was_training:
            model.train()
        return {}
    acc = torch.float32 if device.startswith("mps") else torch.float64
    totals = torch.zeros(2, dtype=acc, device=device)  # nll sum, token count
    step = batch_size * dist.world
    # every rank runs the same number of forward passes (FSDP's are collective); a rank
    # past the end scores the first block with weight 0
    for start in range(dist.rank * batch_size, n + (-n) % step, step):
        end = min(start + batch_size, n)
        real = end > start
        rows = blocks[start:end] if real else blocks[0:1]
        x = torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(device, non_blocking=True)
        with autocast(device, dtype):
            nll = lm_loss(model, x, reduction="sum")
        if real:
            totals[0] += nll.to(acc)
            totals[1] += (x[:, 1, 1:] != -100).sum() if x.dim() == 3 else x.numel() - x.size(0)
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


def _full_state(model: torch.nn.Module, dist: Dist) -> dict[str, torch.Tensor]:
    """The model's whole state dict (gathered from the shards under FSDP: collective)."""
    if dist.fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    return model.state_dict()


def _placed_by_quantizer(model: torch.nn.Module) -> bool:
    """A base loaded quantized by bitsandbytes (optimizer.lora's nf4/int8, through peft too):
    already on its GPU, and ``.to()`` is refused for it."""
    return getattr(model, "hf_quantizer", None) is not None


def _prepare(model: torch.nn.Module, cfg: TrainConfig, dist: Dist, device: str) -> torch.nn.Module:
    """Move ``model`` to ``device``, turn on gradient checkpointing, wrap it for DDP or FSDP
    and compile it, as ``cfg`` says. Returns what the loop calls forward on."""
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        elif hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            raise ValueError("gradient_checkpointing needs a transformers model (activation_checkpointing_enable)")
        if getattr(getattr(model, "config", None), "use_cache", None):
            model.config.use_cache = False  # no KV cache while training with recomputation
    if not _placed_by_quantizer(model):
        model.to(device)
    net: torch.nn.Module = model
    if dist.world > 1:
        if dist.fsdp:
            from torch.distributed.fsdp import fully_shard

            layers = getattr(getattr(model, "model", None), "layers", None) or getattr(
                getattr(model, "transformer", None), "h", None) or []
            for layer in layers:
                fully_shard(layer)
            fully_shard(model)
        else:
            ids = [int(device.split(":")[1])] if device.startswith("cuda:") else None
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        net = torch.compile(net, backend=cfg.compile_backend)
    return net


def train(
    model: torch.nn.Module,
    train_blocks: Any,
    val_blocks: Any,
    cfg: TrainConfig,
    io: TrainIO,
    *,
    seed: int,
    dist: Dist | None = None,
) -> TrainResult:
    """Train ``model`` in place; returns where it stopped and the last metrics.

    Under DDP/FSDP (``dist.world > 1``, inside a torchrun worker) the model is wrapped here.
    The model ends on the device it came from (the CPU for a pipeline's model).
    """
    from llmos.sdk import autocast, autocast_dtype, resolve_device

    dist = dist or Dist()
    if cfg.batch_size % dist.world:
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the {dist.world} DDP processes")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = dist.device if dist.world > 1 else resolve_device(cfg.device)
    dtype = autocast_dtype(device, cfg.precision)
    home = next(model.parameters()).device
    net = _prepare(model, cfg, dist, device)
    ddp_model = net if isinstance(net, torch.nn.parallel.DistributedDataParallel) else getattr(net, "_orig_mod", None)
    ddp_model = ddp_model if isinstance(ddp_model, torch.nn.parallel.DistributedDataParallel) else None
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
        st = load_checkpoint(last, model, optimizer, scheduler, fsdp=dist.fsdp)
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

        best_state = load_file(str(best_path), device=device)

    def remember_best() -> None:
        nonlocal best_state
        best_state = {k: v.detach().clone() for k, v in _full_state(model, dist).items()}
        if best_path is not None and dist.main:
            import os

            from safetensors.torch import save_file

            tmp = best_path.with_suffix(".tmp")
            save_file({k: v.contiguous().cpu() for k, v in best_state.items()}, str(tmp))
            os.replace(tmp, best_path)
    tokens_per_update = cfg.batch_size * cfg.grad_accum * (train_blocks.shape[-1] - 1)

    def loop_state() -> dict[str, Any]:
        return {"epoch": batches.epoch, "cursor": batches.cursor, "best": best, "bad_evals": bad_evals,
                "history": history}

    def checkpoint() -> str | None:
        if ckpt_dir is None:
            return None
        states = None
        if dist.fsdp:  # gathered on every rank (collective), written by rank 0
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

            states = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
        if not dist.main:
            return None
        return str(save_checkpoint(ckpt_dir, step, model, optimizer, scheduler, loop_state(), cfg.keep_checkpoints,
                                   states=states))

    def run_eval() -> dict[str, float]:
        m = evaluate(net if dist.fsdp else model, val_blocks, max(1, cfg.batch_size // dist.world), cfg.eval_blocks,
                     dist, device=device, dtype=dtype)
        if m:
            m = {**m, "step": float(step)}
            history.append(m)
            io.log_eval(step, {k: v for k, v in m.items() if k != "step"})
        return m

    io.progress(step)
    net.train()
    stopped: str | None = None
    last_eval_step = -1
    loss_sum = torch.zeros((), device=device)
    window_n, window_t0 = 0, time.perf_counter()
    grad_norm: torch.Tensor | None = None
    while step < cfg.max_steps:
        # single process: check every step (an Event lookup); DDP: agree on it at logging steps
        if (dist.world == 1 or step % cfg.log_every == 0) and dist.any(io.should_stop()):
            stopped = "interrupted"
            break
        for micro in range(cfg.grad_accum):
            x = batches.next().to(device, non_blocking=True)
            if ddp_model is not None and micro < cfg.grad_accum - 1:
                with ddp_model.no_sync():
                    with autocast(device, dtype):
                        loss = lm_loss(net, x)
                    (loss / cfg.grad_accum).backward()
            else:
                with autocast(device, dtype):
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
            if grad_norm is not None and hasattr(grad_norm, "full_tensor"):  # FSDP: a DTensor
                grad_norm = grad_norm.full_tensor()
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
    if dist.world == 1 and not _placed_by_quantizer(model):
        model.to(home)  # the next stages get the model where it was
    return TrainResult(step=step, stopped=stopped, metrics=metrics, history=history, checkpoint=path)
