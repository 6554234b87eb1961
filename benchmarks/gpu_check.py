"""A prepared check for a GPU machine (at most ~5 minutes): training and generation tokens/s,
bf16 vs fp32 and torch.compile vs eager, side by side in one run.

    python benchmarks/gpu_check.py            # on a CUDA machine: the full check
    python benchmarks/gpu_check.py --cpu      # reduced, on the CPU (what CI and a laptop can run)

No downloads: a Llama-style model built from its config, random token blocks. Training is
``llmos_train.loop.train`` (the loop ``optimizer.train`` runs) with ``device``/``precision``/
``compile`` set as a pipeline would; generation is ``llmos_models.generate`` on the model
placed with ``llmos.devices.place_for_inference`` (the path ``llmos generate --device``
takes); serving is llmos-serve's own path: a version directory loaded by its model pool
(``llmos_serve.loader`` places it with ``device``/``precision``) and decoded by its eager
engine (continuous batching, input ids, masks, positions, KV cache and sampling on the
device), 8 sequences at once. Prints one JSON object per measurement and a table of
ratios; ``--write`` also writes docs/benchmarks/gpu.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BUDGET_S = 300.0


def build(vocab: int, hidden: int, layers: int, block: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
                      num_attention_heads=max(2, hidden // 64), num_key_value_heads=max(1, hidden // 128),
                      max_position_embeddings=max(block, 512), tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def train_tokens_per_s(device: str, precision: str, compile_: bool, *, shape: dict, steps: int, batch: int,
                       backend: str) -> dict:
    import numpy as np

    from llmos_train.config import TrainConfig
    from llmos_train.loop import TrainIO, train

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, shape["vocab"], size=(batch * (steps + 2), shape["block"])).astype(np.int64)
    seen: list[dict] = []

    class IO(TrainIO):
        def log_train(self, step: int, metrics: dict) -> None:
            seen.append(dict(metrics, step=step))

    warm = 3 if not compile_ else 5  # compilation happens in the first steps: not timed
    cfg = TrainConfig(max_steps=warm + steps, batch_size=batch, lr=1e-3, schedule="constant", log_every=warm + steps,
                      device=device, precision=precision, compile=compile_, compile_backend=backend)
    model = build(shape["vocab"], shape["hidden"], shape["layers"], shape["block"])
    # time the steps after warm-up ourselves: the loop's tokens_per_s covers its whole window
    t0 = time.perf_counter()
    first = TrainConfig(**{**cfg.model_dump(), "max_steps": warm, "log_every": warm})
    train(model, blocks, blocks[:0], first, IO(), seed=0)
    t_warm = time.perf_counter() - t0
    t1 = time.perf_counter()
    train(model, blocks, blocks[:0], cfg.model_copy(update={"max_steps": steps, "log_every": steps}), IO(), seed=1)
    elapsed = time.perf_counter() - t1
    tokens = steps * batch * (shape["block"] - 1)
    return {"what": "train", "device": device, "precision": precision, "compile": compile_,
            "tokens_per_s": tokens / elapsed, "warmup_s": t_warm, "loss": seen[-1]["loss"]}


def generate_tokens_per_s(device: str, precision: str, *, shape: dict, new_tokens: int) -> dict:
    from llmos.devices import place_for_inference
    from llmos_models.generate import GenerationSettings, generate

    class Tok:  # a byte-level stand-in: generation speed does not depend on the vocabulary's text
        bos_token_id, eos_token_id, pad_token_id = 1, None, 0

        def __call__(self, text, return_tensors=None, add_special_tokens=True):
            import torch

            ids = [1] + [3 + (b % (shape["vocab"] - 3)) for b in text.encode()]
            return {"input_ids": torch.tensor([ids])}

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(map(str, ids))

    model = build(shape["vocab"], shape["hidden"], shape["layers"], shape["block"])
    place_for_inference(model, device, precision)
    settings = GenerationSettings(max_new_tokens=new_tokens)
    generate(model, Tok(), "warm up", GenerationSettings(max_new_tokens=4))
    t0 = time.perf_counter()
    out = generate(model, Tok(), "The quick brown fox", settings)
    elapsed = time.perf_counter() - t0
    return {"what": "generate", "device": device, "precision": precision, "compile": False,
            "tokens_per_s": out.completion_tokens / elapsed}


def serve_tokens_per_s(device: str, precision: str, *, shape: dict, new_tokens: int, clients: int = 8) -> dict:
    import shutil
    import tempfile
    import threading

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from llmos_serve.engine import SamplingParams, Sequence
    from llmos_serve.pool import ModelPool

    text = "the quick brown fox jumps over the lazy dog, and a server answers every request. " * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=300,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)  # no end-of-text token: every sequence runs to its length
    root = Path(tempfile.mkdtemp(prefix="llmos-gpu-check-"))
    build(len(fast), shape["hidden"], shape["layers"], shape["block"]).save_pretrained(root / "m")
    fast.save_pretrained(root / "m")
    pool = ModelPool(str(root / "m"), engine="eager", device=device, precision=precision, poll_interval=0)
    try:
        pool.start()
        with pool.acquire(pool.name) as lease:
            engine, loaded = lease.engine, lease.model
            assert engine.device.type == device.split(":")[0], (engine.device, device)

            def run(n: int, tokens: int) -> tuple[list[Sequence], float]:
                done, finished = threading.Event(), []

                def sink(event: tuple) -> None:
                    if event[0] == "finish":
                        finished.append(event[1])
                        if len(finished) == n:
                            done.set()

                seqs = [Sequence(prompt_ids=fast(f"request {i}: the quick brown fox")["input_ids"],
                                 params=SamplingParams(max_tokens=tokens, temperature=0), sink=sink) for i in range(n)]
                t0 = time.perf_counter()
                engine.submit(seqs)
                assert done.wait(300), "the engine did not finish"
                return seqs, time.perf_counter() - t0

            run(2, 4)  # warm-up
            seqs, elapsed = run(clients, new_tokens)
        assert all(s.finish_reason == "length" for s in seqs), [s.error for s in seqs]
        generated = sum(s.completion_tokens for s in seqs)
    finally:
        pool.close()
        shutil.rmtree(root, ignore_errors=True)
    return {"what": f"serve x{clients}", "device": loaded.device, "precision": loaded.precision, "compile": False,
            "tokens_per_s": generated / elapsed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="reduced check on the CPU (no GPU needed)")
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks/gpu.md")
    args = ap.parse_args()
    import torch

    start = time.perf_counter()
    gpu = torch.cuda.is_available() and not args.cpu
    if gpu:
        device, shape, steps, batch, new, backend = "cuda", dict(vocab=8192, hidden=512, layers=8, block=256), 40, 16, \
            128, "inductor"
        runs = [("fp32", False), ("bf16", False), ("bf16", True), ("fp32", True)]
    else:
        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
        device, shape, steps, batch, new, backend = "cpu", dict(vocab=512, hidden=64, layers=2, block=64), 4, 4, 16, \
            "aot_eager"
        runs = [("fp32", False), ("bf16", False), ("fp32", True)]
    results = []
    for precision, comp in runs:
        if time.perf_counter() - start > BUDGET_S * 0.7:
            print(json.dumps({"skipped": f"train {precision} compile={comp}: time budget"}), flush=True)
            continue
        r = train_tokens_per_s(device, precision, comp, shape=shape, steps=steps, batch=batch, backend=backend)
        results.append(r)
        print(json.dumps(r), flush=True)
    for precision in ("fp32", "bf16"):
        r = generate_tokens_per_s(device, precision, shape=shape, new_tokens=new)
        results.append(r)
        print(json.dumps(r), flush=True)
    for precision in ("fp32", "bf16"):
        r = serve_tokens_per_s(device, precision, shape=shape, new_tokens=new)
        results.append(r)
        print(json.dumps(r), flush=True)

    def tps(what: str, precision: str, comp: bool) -> float | None:
        for r in results:
            if (r["what"], r["precision"], r["compile"]) == (what, precision, comp):
                return r["tokens_per_s"]
        return None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a and b else "n/a"

    name = torch.cuda.get_device_name(0) if gpu else "CPU (reduced check)"
    lines = [
        f"## GPU check ({name})",
        "",
        f"_benchmarks/gpu_check.py{' --cpu' if not gpu else ''}, torch {torch.__version__}, model "
        f"{shape['hidden']}x{shape['layers']} layers, blocks of {shape['block']}, batch {batch}; "
        f"{time.perf_counter() - start:.0f} s in all._",
        "",
        "| measurement | tokens/s | ratio |",
        "|---|---:|---:|",
    ]
    for r in results:
        base = tps(r["what"], "fp32", False)
        label = f"{r['what']} {r['precision']}{' compiled' if r['compile'] else ''}"
        lines.append(f"| {label} | {r['tokens_per_s']:.0f} | {ratio(r['tokens_per_s'], base)} vs fp32 eager |")
    lines += ["", f"- training bf16 vs fp32: {ratio(tps('train', 'bf16', False), tps('train', 'fp32', False))}",
              f"- training compiled vs eager ({backend}): "
              f"{ratio(tps('train', 'bf16' if gpu else 'fp32', True), tps('train', 'bf16' if gpu else 'fp32', False))}",
              f"- generation bf16 vs fp32: {ratio(tps('generate', 'bf16', False), tps('generate', 'fp32', False))}",
              f"- serving (8 sequences, eager engine) bf16 vs fp32: "
              f"{ratio(tps('serve x8', 'bf16', False), tps('serve x8', 'fp32', False))}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        from benchmarks_stamp import write_section

        write_section("gpu", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
