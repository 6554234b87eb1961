"""Measurements shared by the compression methods, ``llmos compress`` and
``llmos compare``: parameters, bytes on disk, generation speed, perplexity.

Every number is measured the same way for a parent and its compressed child, in the
same process, so the ratios between them are meaningful; absolute speeds depend on
the machine and its load.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

from llmos_models.lm import count_parameters, lm_loss  # noqa: F401 - re-exported for prune/distill


def perplexity(model: Any, blocks: Any, batch_size: int = 8, max_blocks: int | None = 64) -> dict[str, float]:
    """``{"val_loss", "val_ppl"}`` of ``model`` on (at most ``max_blocks`` of) ``blocks``
    (:func:`llmos_models.lm.perplexity` as the metrics dict compression records)."""
    from llmos_models.lm import perplexity as _perplexity

    loss, _ = _perplexity(model, blocks, batch_size, max_blocks=max_blocks)
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py", ".text", ".jsonl", ".json", ".toml", ".cfg", ".ini", ".html"}




def dir_bytes(path: Path | str, suffixes: tuple[str, ...] = (".safetensors",)) -> int:
    """Bytes of the weight files in a model directory (tokenizer and configs excluded)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.name.endswith(suffixes))


def model_block_size(model: Any, default: int = 128) -> int:
    cfg = getattr(model, "config", None)
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or default
    return int(min(default, limit))


class TextBlocks:
    """Token blocks from text files, tokenized with a model's tokenizer: the stand-in for a
    packed dataset when ``--data`` names plain text. The last ``validation`` fraction of
    the blocks (in file order) is the validation split."""

    def __init__(self, blocks: Any, block_size: int, vocab_size: int, validation: float = 0.1) -> None:
        self.block_size = block_size
        self.vocab_size = vocab_size
        n_val = max(1, int(round(len(blocks) * validation))) if len(blocks) > 1 else 0
        self._splits = {"train": blocks[: len(blocks) - n_val], "validation": blocks[len(blocks) - n_val:]}

    @property
    def splits(self) -> list[str]:
        return sorted(self._splits)

    def split(self, name: str) -> Any:
        if name not in self._splits:
            raise NotFoundError(f"no split {name!r}; splits: train, validation")
        return self._splits[name]


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in TEXT_SUFFIXES)
    if not files:
        raise ValidationError(f"{path} holds no text files ({', '.join(sorted(TEXT_SUFFIXES))}): point --data at text")
    return files


def open_data(path: Path | str, tokenizer: Any, block_size: int, max_tokens: int = 2_000_000) -> Any:
    """A dataset for perplexity and fine-tuning: a packed dataset directory (``meta.json``,
    written by ``data.corpus``) or text files tokenized with ``tokenizer`` into blocks."""
    import numpy as np

    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"data path {str(path)!r} does not exist: pass a text file, a folder of text, or a dataset")
    if (path / "meta.json").is_file():
        try:
            from llmos_data.dataset import PackedDataset
        except ImportError as exc:
            raise ValidationError(f"{path} is a packed dataset; install llmos-data to read it") from exc
        return PackedDataset(path)
    if tokenizer is None:
        raise ValidationError("the model has no tokenizer, so text data cannot be tokenized: pass a packed dataset")
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    for f in _text_files(path):
        text = f.read_text(encoding="utf-8", errors="replace")
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            ids.append(eos)
        if len(ids) >= max_tokens:
            break
    n = len(ids) // block_size
    if n < 2:
        raise ValidationError(
            f"{path} has {len(ids)} tokens, too few for two blocks of {block_size}: use more text"
        )
    blocks = np.asarray(ids[: n * block_size], dtype=np.int64).reshape(n, block_size)
    return TextBlocks(blocks, block_size, int(getattr(tokenizer, "vocab_size", 0) or 0))






def generation_speed(model: Any, *, new_tokens: int = 32, prompt_tokens: int = 16, repeats: int = 3,
                     seed: int = 0) -> dict[str, float]:
    """Greedy single-sequence generation with the KV cache: ``tokens_per_s`` and
    ``latency_ms_per_token`` (median over ``repeats``, after one warm-up)."""
    import torch

    vocab = int(model.config.vocab_size)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, prompt_tokens), generator=g)
    from transformers import GenerationConfig

    gen = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           eos_token_id=None, pad_token_id=0, num_beams=1)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen)
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
    produced = out.shape[1] - ids.shape[1]
    t = statistics.median(times)
    return {"tokens_per_s": produced / t, "latency_ms_per_token": 1000.0 * t / produced}


def measure(model: Any, *, path: Path | str | None = None, data: Any = None, speed: bool = True,
            eval_blocks: int = 64) -> dict[str, float]:
    """Parameters, bytes on disk (when ``path`` is given), speed and validation perplexity
    (when ``data`` is given)."""
    out: dict[str, float] = {"params": float(count_parameters(model))}
    if path is not None:
        out["size_bytes"] = float(dir_bytes(path))
    if speed:
        out.update(generation_speed(model))
    if data is not None:
        out.update(perplexity(model, data.split("validation"), max_blocks=eval_blocks))
    return out


def fit(model: Any, blocks: Any, *, steps: int, lr: float, batch_size: int, seed: int, loss_fn: Any = None,
        warmup_steps: int = 0, weight_decay: float = 0.0, progress: Any = None, should_stop: Any = None,
        log: Any = None) -> dict[str, float]:
    """A short AdamW fine-tune on ``blocks`` (linear warmup, cosine decay, grad clip 1.0).

    :param loss_fn: ``loss_fn(model, x) -> loss`` (default: next-token cross-entropy).
    :param progress: object with ``update(advance, **fields)``.
    :param should_stop: callable returning True to stop early (Ctrl-C).
    :param log: ``log(step, metrics)`` every 10 steps.
    :returns: ``{"loss": last smoothed loss, "steps": steps done}``.
    """
    import numpy as np
    import torch

    if len(blocks) < batch_size:
        raise ValidationError(
            f"the training split has {len(blocks)} blocks, fewer than batch_size={batch_size}: lower it or add data"
        )
    loss_fn = loss_fn or lm_loss
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def schedule(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.train()
    perm, cursor, smooth, done = rng.permutation(len(blocks)), 0, None, 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            break
        if cursor + batch_size > len(perm):
            perm, cursor = rng.permutation(len(blocks)), 0
        idx = np.sort(perm[cursor:cursor + batch_size])
        cursor += batch_size
        x = torch.from_numpy(np.asarray(blocks[idx], dtype=np.int64))
        loss = loss_fn(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        value = float(loss.detach())
        smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
        done = step + 1
        if progress is not None:
            progress.update(1, loss=smooth)
        if log is not None and (done % 10 == 0 or done == steps):
            log(done, {"loss": smooth, "lr": sched.get_last_lr()[0]})
    model.eval()
    return {"loss": float(smooth if smooth is not None else float("nan")), "steps": float(done)}
