"""Compression and export: int8, structured pruning, distillation, ONNX Runtime.

Every figure is a ratio between a compressed model and its parent, measured side by
side in one run (speed runs alternate the two models, medians of several repeats).

Model: the ``small`` Llama preset of llmos-models (256 wide, 10 layers, 8 heads,
MLP 768) with a 2048-token BPE vocabulary, trained briefly (``TRAIN_STEPS`` AdamW
steps) on Python standard-library sources found on this machine: larger than the
quickstart model (``tiny`` preset). Perplexity is measured on held-out blocks of
the same text. Speed is single-sequence greedy generation with the KV cache, one
thread (the machine is shared).

Targets (issue 6): int8 ≤ 0.45× bytes, ≥ 1.3× tokens/s, ≤ +3% perplexity;
structured pruning at 30% ≥ 1.2× tokens/s after a recovery fine-tune; a distilled
student at half the parameters within 15% of the teacher's perplexity; ONNX Runtime
≥ 1.2× PyTorch eager on next-token latency with matching logits.

    python benchmarks/bench_compress.py      # writes docs/benchmarks/compress.md
"""

from __future__ import annotations

import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAIN_STEPS = int(os.environ.get("BENCH_COMPRESS_TRAIN_STEPS", "150"))
RECOVERY_STEPS = int(os.environ.get("BENCH_COMPRESS_RECOVERY_STEPS", "50"))
DISTILL_STEPS = int(os.environ.get("BENCH_COMPRESS_DISTILL_STEPS", "150"))
TRAIN_THREADS = int(os.environ.get("BENCH_COMPRESS_TRAIN_THREADS", "2"))
REPEATS = int(os.environ.get("BENCH_COMPRESS_REPEATS", "5"))
BLOCK = 128
EVAL_BLOCKS = 96


def _corpus(max_bytes: int = 2_500_000) -> str:
    lib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for f in sorted(lib.glob("*.py")):
        text = f.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= max_bytes:
            break
    return "\n\n".join(parts)


def _tokenizer(text: str, vocab: int = 2048):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text[i:i + 100_000] for i in range(0, len(text), 100_000)],
                            trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<s>", "</s>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def _alternate(fns: dict, repeats: int) -> dict:
    """Call each function in turn ``repeats`` times (after one warm-up); medians."""
    for fn in fns.values():
        fn()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _gen_fn(model, new_tokens: int = 32, prompt: int = 32):
    import torch
    from transformers import GenerationConfig

    ids = torch.randint(3, int(model.config.vocab_size), (1, prompt), generator=torch.Generator().manual_seed(0))
    gen = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           eos_token_id=None, pad_token_id=0)
    model.eval()

    def run():
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen)

    return run


def _decode_fns(model, onnx_model, context: int = 64, steps: int = 32):
    """Next-token latency with the KV cache: PyTorch eager vs ONNX Runtime, same tokens."""
    import numpy as np
    import torch

    ids = torch.randint(3, int(model.config.vocab_size), (1, context), generator=torch.Generator().manual_seed(1))

    def torch_run():
        with torch.inference_mode():
            out = model(input_ids=ids, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
            for _ in range(steps):
                out = model(input_ids=tok, past_key_values=past, use_cache=True)
                past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)

    def ort_run():
        logits, past = onnx_model.step(ids.numpy())
        tok = logits[:, -1:].argmax(-1).astype(np.int64)
        for _ in range(steps):
            logits, past = onnx_model.step(tok, past)
            tok = logits[:, -1:].argmax(-1).astype(np.int64)

    return torch_run, ort_run


def _ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def main() -> str:
    import torch

    sys.path.insert(0, str(HERE))
    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    from llmos_compress.distill import DistillStep
    from llmos_compress.config import DistillConfig, PruneConfig
    from llmos_compress.int8 import quantize_int8
    from llmos_compress.measure import TextBlocks, count_parameters, dir_bytes, fit, perplexity
    from llmos_compress.prune import PruneStep
    from llmos_export.config import OnnxConfig
    from llmos_export.onnx_export import export_onnx
    from llmos_export.runtime import OnnxCausalLM
    from llmos_models.build import build_model
    from llmos_models.config import LlamaConfig
    from llmos_models.io import load_model, save_model
    from llmos.context import RunContext

    import numpy as np

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-compress-"))
    t_start = time.perf_counter()
    text = _corpus()
    tok = _tokenizer(text)
    ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
    n = len(ids) // BLOCK
    data = TextBlocks(ids[: n * BLOCK].reshape(n, BLOCK), BLOCK, len(tok), validation=0.05)
    train, val = data.split("train"), data.split("validation")

    teacher = build_model("llama", LlamaConfig(preset="small"), vocab_size=len(tok), max_positions=512, seed=0,
                          special={"pad": 0, "bos": 1, "eos": 2})
    t0 = time.perf_counter()
    torch.set_num_threads(TRAIN_THREADS)
    fit(teacher, train, steps=TRAIN_STEPS, lr=2e-3, batch_size=16, seed=0, warmup_steps=30, weight_decay=0.1)
    train_s = time.perf_counter() - t0
    torch.set_num_threads(1)
    base_dir = save_model(teacher, tok, work / "base")
    base, _ = load_model(base_dir)
    base_ppl = perplexity(base, val, max_blocks=EVAL_BLOCKS)["val_ppl"]
    base_params = count_parameters(base)
    rows = []

    # -- int8 ---------------------------------------------------------------------------
    q = quantize_int8(base)
    q_dir = save_model(q, tok, work / "int8")
    q, _ = load_model(q_dir)
    q_ppl = perplexity(q, val, max_blocks=EVAL_BLOCKS)["val_ppl"]
    sp = _alternate({"fp32": _gen_fn(base), "int8": _gen_fn(q)}, REPEATS)
    size_ratio = dir_bytes(q_dir) / dir_bytes(base_dir)
    speed = sp["fp32"] / sp["int8"]
    ppl_delta = q_ppl / base_ppl - 1
    rows.append(("int8 dynamic (per-channel, lm_head incl.)", f"{count_parameters(q) / base_params:.2f}×",
                 f"**{size_ratio:.2f}×** {_ok(size_ratio <= 0.45)}", f"**{speed:.2f}×** {_ok(speed >= 1.3)}",
                 f"{q_ppl:.2f} vs {base_ppl:.2f} (**{ppl_delta:+.1%}**) {_ok(ppl_delta <= 0.03)}"))
    del q

    # -- structured pruning 30% + recovery ----------------------------------------------
    pruned, _ = load_model(base_dir)
    ctx = RunContext(run_id=None, spec=None, workdir=work, seed=0)
    ctx.artifacts.update(model=pruned, dataset=data)
    torch.set_num_threads(TRAIN_THREADS)
    PruneStep(PruneConfig(structured=True, sparsity=0.3, recovery_steps=RECOVERY_STEPS, lr=5e-4,
                          batch_size=16)).run(ctx)
    torch.set_num_threads(1)
    p_dir = save_model(pruned, tok, work / "pruned")
    pruned, _ = load_model(p_dir)
    p_ppl = perplexity(pruned, val, max_blocks=EVAL_BLOCKS)["val_ppl"]
    sp = _alternate({"fp32": _gen_fn(base), "pruned": _gen_fn(pruned)}, REPEATS)
    p_speed = sp["fp32"] / sp["pruned"]
    rows.append((f"structured prune 30% of MLP neurons, {RECOVERY_STEPS}-step recovery",
                 f"{count_parameters(pruned) / base_params:.2f}×", f"{dir_bytes(p_dir) / dir_bytes(base_dir):.2f}×",
                 f"**{p_speed:.2f}×** {_ok(p_speed >= 1.2)}", f"{p_ppl:.2f} vs {base_ppl:.2f} ({p_ppl / base_ppl - 1:+.1%})"))
    del pruned

    # -- distillation --------------------------------------------------------------------
    ctx = RunContext(run_id=None, spec=None, workdir=work, seed=0)
    ctx.artifacts.update(teacher=base, dataset=data)
    torch.set_num_threads(TRAIN_THREADS)
    dm = DistillStep(DistillConfig(steps=DISTILL_STEPS, batch_size=16, lr=2e-3, warmup_steps=20, alpha=0.5,
                                   temperature=2.0, eval_batches=EVAL_BLOCKS // 16)).run(ctx)
    student = ctx.artifacts["model"]
    torch.set_num_threads(1)
    s_dir = save_model(student, tok, work / "student")
    s_ppl = perplexity(student, val, max_blocks=EVAL_BLOCKS)["val_ppl"]
    sp = _alternate({"fp32": _gen_fn(base), "student": _gen_fn(student)}, REPEATS)
    s_gap = s_ppl / base_ppl - 1
    s_params = count_parameters(student) / base_params
    rows.append((f"distilled student (5 of 10 layers, {DISTILL_STEPS} steps, α=0.5, T=2)", f"{s_params:.2f}×",
                 f"{dir_bytes(s_dir) / dir_bytes(base_dir):.2f}×", f"{sp['fp32'] / sp['student']:.2f}×",
                 f"{s_ppl:.2f} vs teacher {base_ppl:.2f} (**{s_gap:+.1%}**) {_ok(s_gap <= 0.15)}"))
    del student

    # -- ONNX Runtime ----------------------------------------------------------------------
    t0 = time.perf_counter()
    _files, report = export_onnx(base, tok, work / "onnx", OnnxConfig(quantize=True, check_tokens=64))
    export_s = time.perf_counter() - t0
    ort_model = OnnxCausalLM(work / "onnx", threads=1)
    ort_int8 = OnnxCausalLM(work / "onnx", variant="int8", threads=1)
    torch_fn, ort_fn = _decode_fns(base, ort_model)
    _, ort8_fn = _decode_fns(base, ort_int8)
    sp = _alternate({"torch": torch_fn, "ort": ort_fn, "ort_int8": ort8_fn}, REPEATS)
    o_speed = sp["torch"] / sp["ort"]
    o8_speed = sp["torch"] / sp["ort_int8"]
    diff = report["check"]["fp32"]["max_abs_diff"]
    total_s = time.perf_counter() - t_start

    lines = [
        "## Compression and export",
        "",
        stamp(),
        "",
        f"Base model: `small` Llama preset ({base_params / 1e6:.2f}M parameters, vocabulary {len(tok)}), trained "
        f"{TRAIN_STEPS} AdamW steps ({train_s:.0f} s) on {len(text) / 1e6:.1f} MB of Python standard-library source "
        f"(block {BLOCK}, batch 16); validation perplexity {base_ppl:.2f} on {min(EVAL_BLOCKS, len(val))} held-out blocks. "
        f"Training and fine-tuning use {TRAIN_THREADS} threads. Speed: greedy generation of 32 tokens after a 32-token prompt, KV cache, one thread, the two models "
        f"alternating, median of {REPEATS}. Whole benchmark: {total_s / 60:.1f} min.",
        "",
        "| method | params | bytes on disk | tokens/s | validation perplexity |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        "Ratios are compressed ÷ parent (speed: parent time ÷ compressed time). Targets: int8 ≤ 0.45× bytes, "
        "≥ 1.3× tokens/s, ≤ +3% perplexity; structured pruning ≥ 1.2× tokens/s; student within 15% of the "
        "teacher at about half the parameters.",
        "",
        f"Distillation check: the student ({dm['params']:.0f} parameters, "
        f"{dm['params_ratio_vs_teacher']:.2f}× the teacher) reached perplexity {s_ppl:.2f}; teacher {base_ppl:.2f}.",
        "",
        "Caveat: when the base model is under-trained (few TRAIN_STEPS), the recovery and distillation steps are "
        "extra training and can lower perplexity below the parent's; only the int8 row involves no training.",
        "",
        "### ONNX Runtime vs PyTorch eager (next-token latency with KV cache)",
        "",
        "| runtime | latency per token | speed-up | logits vs PyTorch |",
        "|---|---|---|---|",
        f"| PyTorch eager | {sp['torch'] / 33 * 1000:.2f} ms | 1.00× | |",
        f"| ONNX Runtime fp32 | {sp['ort'] / 33 * 1000:.2f} ms | **{o_speed:.2f}×** {_ok(o_speed >= 1.2)} | "
        f"max abs diff {diff:.1e} (tolerance 1e-3) {_ok(diff <= 1e-3)} |",
        f"| ONNX Runtime int8 (dynamic) | {sp['ort_int8'] / 33 * 1000:.2f} ms | {o8_speed:.2f}× | "
        f"max abs diff {report['check']['int8']['max_abs_diff']:.2f}, top-1 agreement "
        f"{report['check']['int8']['top1_agreement']:.0%} |",
        "",
        f"One 64-token prompt then 32 cached steps per measurement, one thread for both runtimes; export took "
        f"{export_s:.0f} s (`torch.onnx.export(dynamo=True)`, opset {report['opset']}).",
        "",
        "Unstructured magnitude pruning is not in the table: its zeros are stored densely, so on CPU it changes "
        "neither bytes nor speed (the metrics of `compression.prune` report only the sparsity reached).",
        "",
    ]
    text_out = "\n".join(lines)
    return write_section("compress", text_out)


if __name__ == "__main__":
    print(main())
