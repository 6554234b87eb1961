"""LoRA (``optimizer.lora``) against full fine-tuning, side by side in one process.

- **speed**: the same ``llmos_train.loop.train`` on the small Llama preset, full
  fine-tuning vs LoRA (r = 8 on q/v), taking turns in chunks of steps so both see the
  same machine load; tokens/s ratio (target ≥ 1.5×).
- **size**: the bytes an adapter version stores (``adapter_model.safetensors``) vs the
  base's weights (``model.safetensors``), written by ``llmos_models.io.save_model``
  (target ≤ 5%), and whether the adapter carries the base's tokenizer (same bytes).

    python benchmarks/bench_lora.py
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from pathlib import Path

VOCAB, BLOCK, BATCH = 2048, 128, 8
CHUNK, ROUNDS = 4, 8


def _tokenizer(vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = " ".join(f"word{i} value{i % 97} item{i % 13}" for i in range(4000))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|eos|>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eos|>", pad_token="<|eos|>")


def _model(preset: str):
    from llmos_models.build import build_model
    from llmos_models.config import LlamaConfig

    return build_model("llama", LlamaConfig(preset=preset), vocab_size=VOCAB, max_positions=BLOCK, seed=0)


def _speed() -> dict:
    import numpy as np
    import torch

    from llmos_train.config import TrainConfig
    from llmos_train.loop import TrainIO, train
    from llmos_train.lora import LoraConfig, attach_lora

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, VOCAB, size=(BATCH * CHUNK * 2, BLOCK)).astype(np.uint16)
    empty = blocks[:0]
    full = _model("small")
    lora = attach_lora(copy.deepcopy(full), LoraConfig(), "bench:1")
    lora_bf16 = attach_lora(copy.deepcopy(full).to(torch.bfloat16), LoraConfig(quantize="bf16"), "bench:1")
    cfg = TrainConfig(max_steps=CHUNK, batch_size=BATCH, lr=1e-4, schedule="constant", log_every=CHUNK)
    lcfg = LoraConfig(max_steps=CHUNK, batch_size=BATCH, schedule="constant", log_every=CHUNK)
    sides = (("full", full, cfg), ("lora", lora, lcfg), ("lora_bf16", lora_bf16, lcfg))
    times: dict[str, list[float]] = {s[0]: [] for s in sides}
    cpu: dict[str, list[float]] = {s[0]: [] for s in sides}
    for r in range(ROUNDS + 1):
        for side, model, c in sides:
            t0, c0 = time.perf_counter(), time.process_time()
            train(model, blocks, empty, c, TrainIO(), seed=r)
            if r:  # round 0 warms up
                times[side].append(time.perf_counter() - t0)
                cpu[side].append(time.process_time() - c0)
    tokens = CHUNK * BATCH * (BLOCK - 1)
    return {
        "tps": {s: tokens * len(t) / sum(t) for s, t in times.items()},
        "paired": {s: statistics.median(f / q for f, q in zip(times["full"], times[s], strict=True))
                   for s in ("lora", "lora_bf16")},
        "cpu": {s: sum(cpu["full"]) / sum(cpu[s]) for s in ("lora", "lora_bf16")},
        "params": sum(p.numel() for p in full.parameters()),
        "trainable": sum(p.numel() for p in lora.parameters() if p.requires_grad),
    }


def _flops() -> dict:
    """Matmul + attention FLOPs of one step (forward + backward, torch's FlopCounterMode): the
    work LoRA saves is the frozen weights' gradient matmuls; everything else it needs too."""
    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from llmos_models.lm import lm_loss
    from llmos_train.lora import LoraConfig, attach_lora

    x = torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, size=(BATCH, BLOCK)))
    out = {}
    for side, model in (("full", _model("small")), ("lora", attach_lora(_model("small"), LoraConfig(), "bench:1"))):
        with FlopCounterMode(display=False) as f:
            lm_loss(model, x).backward()
        out[side] = f.get_total_flops()
    return out


def _size(preset: str) -> dict:
    from llmos_models.io import save_model
    from llmos_train.lora import LoraConfig, attach_lora

    tok = _tokenizer(VOCAB)
    base = _model(preset)
    with tempfile.TemporaryDirectory(prefix="llmos-bench-lora-") as tmp:
        b = save_model(base, tok, Path(tmp) / "base")
        a = save_model(attach_lora(copy.deepcopy(base), LoraConfig(), "bench:1"), tok, Path(tmp) / "adapter")
        weights = {p.name: p.stat().st_size for p in (b / "model.safetensors", a / "adapter_model.safetensors")}
        tok_files = [f.name for f in b.iterdir() if f.name.startswith(("tokenizer", "special_tokens"))]
        same_tok = all((b / f).read_bytes() == (a / f).read_bytes() for f in tok_files) and bool(tok_files)
        a_total = sum(f.stat().st_size for f in a.iterdir() if f.name not in tok_files)
    return {"base": weights["model.safetensors"], "adapter": weights["adapter_model.safetensors"],
            "adapter_total": a_total, "same_tokenizer": same_tok}


def main() -> str:
    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    import os

    load0 = os.getloadavg()
    speed = _speed()
    load1 = os.getloadavg()
    flops = _flops()
    sizes = {p: _size(p) for p in ("tiny", "small")}
    ok = lambda cond: "✅" if cond else "❌"  # noqa: E731
    r_tps = speed["tps"]["lora"] / speed["tps"]["full"]
    r_bf = speed["tps"]["lora_bf16"] / speed["tps"]["full"]
    lines = [
        "## LoRA (`optimizer.lora`) vs full fine-tuning",
        "",
        stamp(),
        "",
        f"Small Llama preset (256 wide × 10 layers, {speed['params']:,} parameters, vocab {VOCAB}), batch {BATCH} × "
        f"{BLOCK} tokens, one torch thread, the same `llmos_train.loop.train` for both; LoRA r = 8, alpha 16 on "
        f"q_proj/v_proj ({speed['trainable']:,} trainable parameters). The two take turns every {CHUNK} steps, "
        f"{ROUNDS} timed rounds each after one warm-up round. The machine was shared with other jobs (high load): "
        "only the ratio means something.",
        "",
        "| measure | full fine-tuning | LoRA | ratio (LoRA / full) | target |",
        "|---|---:|---:|---:|---|",
        f"| tokens/s, LoRA on the fp32 base (`quantize = \"none\"`) | {speed['tps']['full']:,.0f} | "
        f"{speed['tps']['lora']:,.0f} | **{r_tps:.2f}×** | ≥ 1.5× {ok(r_tps >= 1.5)} |",
        f"| tokens/s, LoRA on a bf16 base (`quantize = \"bf16\"`) | {speed['tps']['full']:,.0f} | "
        f"{speed['tps']['lora_bf16']:,.0f} | **{r_bf:.2f}×** | ≥ 1.5× {ok(r_bf >= 1.5)} |",
        f"| tokens/s, median of paired rounds (fp32 / bf16 base) | | | {speed['paired']['lora']:.2f}× / "
        f"{speed['paired']['lora_bf16']:.2f}× | |",
        f"| tokens per CPU-second of this process, less sensitive to other jobs (fp32 / bf16 base) | | | "
        f"{speed['cpu']['lora']:.2f}× / {speed['cpu']['lora_bf16']:.2f}× | |",
        f"| matmul + attention FLOPs per step (forward + backward; the speed-up if nothing else cost time) | "
        f"{flops['full'] / 1e9:,.1f} G | {flops['lora'] / 1e9:,.1f} G | {flops['full'] / flops['lora']:.2f}× | |",
    ]
    for preset, s in sizes.items():
        r = s["adapter"] / s["base"]
        lines.append(
            f"| bytes stored, {preset} preset (weights) | {s['base']:,} | {s['adapter']:,} | **{r:.2%}** | "
            f"≤ 5% {ok(r <= 0.05)} |"
        )
        lines.append(
            f"| bytes stored, {preset} preset (all but tokenizer files) | | {s['adapter_total']:,} | "
            f"{s['adapter_total'] / s['base']:.2%} | |"
        )
    lines += [
        "",
        "Why the fp32 base stays below 1.5×: a LoRA step still runs the whole forward pass and the input "
        "gradient of every frozen layer down to the first adapter, so it saves only the frozen weights' gradient "
        "matmuls — a third of the matmul work — and their optimizer update. What it skips is checked by "
        "`plugins/llmos-train/tests/test_lora_frozen.py` (counted FLOPs: no weight gradients for frozen weights, "
        "none for the tied embedding/lm_head, no gradient into the embedding output, so layer 0's q/k/v input "
        "gradients are skipped too; the optimizer holds only the adapter; no master copies). Even if only matmuls "
        "and attention cost time the ratio would be the FLOP row's (a ceiling: about 1.5×); the rest of a step "
        "(RMSNorm, RoPE, SiLU, softmax, cross-entropy, residual adds, and their backward: about a fifth of a full step's CPU time in "
        "a profile on this machine) is the same work in both, which brings the measured ratio down to the one "
        "above. Reaching 1.5× on the fp32 base would need cheaper frozen matmuls (the bf16 base row) or fewer "
        "layers to backpropagate through (adapters on the top layers only), not less overhead.",
        "",
        f"Load average (1/5/15 min) {load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} before the speed run, "
        f"{load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f} after it.",
        "",
        "The adapter version carries the base's tokenizer files byte for byte: "
        + ("yes ✅" if all(s["same_tokenizer"] for s in sizes.values()) else "no ❌")
        + " (in the registry they are the same content-addressed blobs as the base's).",
        "",
    ]
    return write_section("lora", "\n".join(lines))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main())
