"""Measuring a model: perplexity, the unigram baseline, size and generation speed.

The functions are public so other plugins measure the same way (the compression
plugin compares a quantized model with its parent; the server reports speed):

- :func:`perplexity` — ``(mean token loss, perplexity)`` of any causal LM on token blocks;
- :func:`unigram_perplexity` — perplexity of an add-one smoothed unigram model fitted
  on the train blocks, on the same tokens :func:`perplexity` scores;
- :func:`generation_speed` — greedy tokens/s and per-token latency;
- :func:`count_parameters`, :func:`model_size_bytes`.

``model.evaluate`` (:class:`EvaluateStep`) runs them all on the run's dataset.
"""

from __future__ import annotations

import math
import time
from typing import Any

from llmos.sdk import DATASET, METRICS, MODEL, SAMPLES, TOKENIZER, ValidationError

from llmos_models.lm import count_parameters, perplexity




def unigram_perplexity(train_blocks: Any, eval_blocks: Any, vocab_size: int, *, max_blocks: int | None = None,
                       chunk: int = 4096) -> float:
    """Perplexity of a unigram model with add-one smoothing, fitted on ``train_blocks``,
    on the tokens of ``eval_blocks`` that :func:`perplexity` scores (all but the first
    of each block). Streams both arrays in chunks (memory maps stay on disk)."""
    import numpy as np

    counts = np.ones(vocab_size, dtype=np.float64)
    for start in range(0, len(train_blocks), chunk):
        part = np.asarray(train_blocks[start : start + chunk]).ravel()
        counts += np.bincount(part, minlength=vocab_size)[:vocab_size]
    logp = np.log(counts) - math.log(counts.sum())
    n = len(eval_blocks) if max_blocks is None else min(len(eval_blocks), max_blocks)
    total, count = 0.0, 0
    for start in range(0, n, chunk):
        part = np.asarray(eval_blocks[start : min(n, start + chunk)])[:, 1:]
        total -= float(logp[part.ravel()].sum())
        count += part.size
    if count == 0:
        raise ValidationError("no tokens to evaluate the unigram baseline on")
    return math.exp(total / count)


def bits_per_byte(loss: float, blocks: Any, tokenizer: Any, *, max_blocks: int | None = None) -> float:
    """Bits per byte of UTF-8 text: ``loss`` (mean nats per predicted token, as
    :func:`perplexity` returns it) times the predicted tokens, over the bytes those
    tokens decode to, in bits. Unlike perplexity it compares models with different
    tokenizers (special tokens decode to no bytes; their prediction still costs)."""
    n = len(blocks) if max_blocks is None else min(len(blocks), max_blocks)
    if n == 0:
        raise ValidationError("no blocks to measure bits per byte on")
    rows = [list(map(int, blocks[i][1:])) for i in range(n)]
    n_bytes = sum(len(t.encode("utf-8")) for t in tokenizer.batch_decode(rows, skip_special_tokens=True))
    if n_bytes == 0:
        raise ValidationError("the evaluated tokens decode to no text: bits per byte is undefined")
    return loss * sum(len(r) for r in rows) / (n_bytes * math.log(2))


def _n_blocks(ds: Any, split: str) -> int:
    try:
        return int(ds.n_blocks(split)) if split in getattr(ds, "splits", ()) else 0
    except Exception:  # noqa: BLE001 - a dataset without that split
        return 0


def model_size_bytes(model: Any) -> int:
    """Bytes of the model's tensors (parameters and buffers, tied/shared storage counted
    once; packed quantized weights included when they appear in ``state_dict``)."""
    import torch

    seen: set[tuple[int, int]] = set()
    total = 0

    def add(value: Any) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            try:
                key = (value.untyped_storage().data_ptr(), value.storage_offset())
            except (RuntimeError, NotImplementedError):  # quantized / opaque tensors
                key = (id(value), 0)
            if key in seen:
                return
            seen.add(key)
            try:
                total += value.numel() * value.element_size()
            except (RuntimeError, NotImplementedError):
                total += value.numel()
        elif isinstance(value, (tuple, list)):
            for v in value:
                add(v)

    for value in model.state_dict().values():
        add(value)
    return total


def generation_speed(model: Any, tokenizer: Any, prompt: str = "The", *, new_tokens: int = 32,
                     repeats: int = 1) -> dict[str, float]:
    """Greedy generation speed: ``{"tokens_per_s", "latency_ms_per_token", "time_to_first_token_ms"}``.

    Exactly ``new_tokens`` tokens are generated (end-of-sequence is ignored), after one
    short warm-up; the best of ``repeats`` runs is reported.
    """
    import torch

    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=True)["input_ids"]
    if ids.shape[1] == 0:
        ids = torch.tensor([[tokenizer.eos_token_id or 0]])
    ids = ids.to(next(model.parameters()).device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    common = dict(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                  pad_token_id=pad, eos_token_id=None, temperature=None, top_k=None, top_p=None)
    model.eval()
    best_total, best_first = float("inf"), float("inf")
    with torch.inference_mode():
        model.generate(max_new_tokens=2, min_new_tokens=2, **common)  # warm-up
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            model.generate(max_new_tokens=1, min_new_tokens=1, **common)
            t1 = time.perf_counter()
            model.generate(max_new_tokens=new_tokens, min_new_tokens=new_tokens, **common)
            t2 = time.perf_counter()
            best_first = min(best_first, t1 - t0)
            best_total = min(best_total, t2 - t1)
    return {
        "tokens_per_s": new_tokens / best_total,
        "latency_ms_per_token": 1000.0 * best_total / new_tokens,
        "time_to_first_token_ms": 1000.0 * best_first,
    }


class EvaluateStep:
    """``model.evaluate``: measure ``ctx.artifacts["model"]`` on the dataset's validation split.

    Writes ``ctx.artifacts["metrics"]`` (and ``["samples"]``), logs the metrics with
    ``kind="eval"``, prints them with sample generations, and returns them.
    """

    def __init__(self, config: Any = None) -> None:
        from llmos_models.config import EvaluateConfig

        self.config = config if config is not None else EvaluateConfig()

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_models.generate import generate

        cfg = self.config
        model = MODEL.get(ctx)
        ds = DATASET.get(ctx)
        if model is None:
            raise ValidationError("model.evaluate needs a model: put model.llama, model.gpt2 or model.load before it")
        if ds is None:
            raise ValidationError("model.evaluate needs a dataset: put a data stage (e.g. data.corpus) before it")
        tokenizer = TOKENIZER.get(ctx)
        if tokenizer is None:
            tokenizer = ds.tokenizer()
        config = getattr(model, "config", None)
        model_vocab = getattr(config, "vocab_size", None)
        if model_vocab is not None and ds.vocab_size > model_vocab:
            raise ValidationError(
                f"the dataset's vocabulary ({ds.vocab_size} tokens) is larger than the model's ({model_vocab}): "
                f"evaluate the model on data tokenized with its own tokenizer"
            )
        positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        if positions is not None and ds.block_size > positions:
            raise ValidationError(
                f"blocks of {ds.block_size} tokens are longer than the model accepts ({positions}): "
                f"use a smaller block_size in the data stage"
            )
        blocks = ds.split(cfg.split)
        n = len(blocks) if cfg.max_blocks is None else min(len(blocks), cfg.max_blocks)
        from llmos.sdk import autocast, autocast_dtype, resolve_device

        device = resolve_device(cfg.device)
        dtype = autocast_dtype(device, cfg.precision)
        home = next(model.parameters()).device
        model.to(device)
        try:
            with ctx.progress(n, f"evaluating on {cfg.split}", unit="block") as bar:
                loss, ppl = perplexity(model, blocks, cfg.batch_size, max_blocks=cfg.max_blocks, progress=bar,
                                       dtype=dtype)
            labeled = blocks.ndim == 3
            uni = None if labeled else unigram_perplexity(ds.split("train"), blocks, ds.vocab_size,
                                                          max_blocks=cfg.max_blocks)
            with autocast(device, dtype):
                speed = generation_speed(model, tokenizer, cfg.prompts[0] if cfg.prompts else "The",
                                         new_tokens=cfg.speed_tokens)
                settings = cfg.sample.model_copy(
                    update={"seed": cfg.sample.seed if cfg.sample.seed is not None else ctx.seed})
                samples = [(p, generate(model, tokenizer, p, settings).text) for p in cfg.prompts]
        finally:
            model.to(home)  # the next stages get the model where it was
        metrics: dict[str, float] = {
            "val_loss": loss,
            "val_ppl": ppl,
            "val_tokens": float(n * (ds.block_size - 1)),
            "params": float(count_parameters(model)),
            "size_bytes": float(model_size_bytes(model)),
            **speed,
        }
        if uni is not None:
            metrics.update(unigram_ppl=uni, ppl_vs_unigram=uni / ppl)
        prefix = "val" if cfg.split == "validation" else cfg.split
        if cfg.bits_per_byte and not labeled:
            metrics[f"{prefix}_bpb"] = bits_per_byte(loss, blocks, tokenizer, max_blocks=cfg.max_blocks)
        if cfg.split == "validation" and _n_blocks(ds, "test"):  # the held-out split reports use
            test = ds.split("test")
            n_test = len(test) if cfg.max_blocks is None else min(len(test), cfg.max_blocks)
            with ctx.progress(n_test, "evaluating on test", unit="block") as bar:
                t_loss, t_ppl = perplexity(model, test, cfg.batch_size, max_blocks=cfg.max_blocks, progress=bar)
            metrics.update(test_loss=t_loss, test_ppl=t_ppl)
            if cfg.bits_per_byte and test.ndim == 2:
                metrics["test_bpb"] = bits_per_byte(t_loss, test, tokenizer, max_blocks=cfg.max_blocks)
        if cfg.tasks:
            from llmos_models.tasks import run_tasks

            metrics.update(run_tasks(cfg.tasks, model, tokenizer,
                                     progress=lambda total, desc: ctx.progress(total, desc, unit="request")))
        METRICS.set(ctx, dict(metrics))
        SAMPLES.set(ctx, samples)
        ctx.log_metrics(getattr(ctx, "step", None), metrics, kind="eval")
        if not cfg.quiet:
            _print_report(metrics, samples)
        return metrics

    __call__ = run


def _print_report(metrics: dict[str, float], samples: list[tuple[str, str]]) -> None:
    import click

    line = f"validation perplexity {metrics['val_ppl']:.2f} (loss {metrics['val_loss']:.4f})"
    if "unigram_ppl" in metrics:
        line += (f" | unigram baseline {metrics['unigram_ppl']:.2f} | {metrics['ppl_vs_unigram']:.2f}x better "
                 f"than unigram")
    if "val_bpb" in metrics:
        line += f" | {metrics['val_bpb']:.3f} bits/byte"
    click.echo(line)
    if "test_ppl" in metrics:
        click.echo(f"test (held out) perplexity {metrics['test_ppl']:.2f}"
                   + (f" | {metrics['test_bpb']:.3f} bits/byte" if "test_bpb" in metrics else ""))
    for key in sorted(k for k in metrics if k.startswith("task.")):
        click.echo(f"{key} = {metrics[key]:.4g}")
    click.echo(
        f"{int(metrics['params']):,} parameters, {metrics['size_bytes'] / 1e6:.2f} MB | greedy generation "
        f"{metrics['tokens_per_s']:.1f} tokens/s ({metrics['latency_ms_per_token']:.1f} ms/token)"
    )
    for prompt, text in samples:
        click.echo(f"  » {prompt}{text}".replace("\n", "\n    "))
