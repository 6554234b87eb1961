"""Constrained decoding (``response_format``): what the JSON constraint costs per token.

Model: the quickstart's size (a `tiny`-preset Llama: 128 wide, 3 layers, 4 heads, MLP 320)
with a 2,048-token byte-level BPE (trained here on JSON lines of small records and the
source of a few standard-library modules, for a vocabulary as varied as the quickstart's),
the model trained for a few seconds on the JSON lines (so that it writes JSON-like text
and the constraint walks the states a real document visits). The serving engine (`llmos_serve.engine.Engine`, in process, one
torch thread) decodes the same prompts at temperature 1 with the same seeds:

- *constrained*: ``response_format: {"type": "json_object"}`` (the per-row processor that
  masks the logits of tokens that cannot continue the document);
- *unconstrained*: no processor, each sequence forced to the same number of tokens as its
  constrained twin (end of text banned by ``logit_bias``, ``max_tokens`` = that length),
  so both sides decode exactly as many tokens from the same prompts.

Rounds alternate the two sides (warm: the masks of states already seen are cached, as on
a server that has answered a few requests). Reported: seconds per generated token,
constrained ÷ unconstrained, for one stream and for 8 concurrent sequences; the time
spent in the processor itself per token; the one-off costs (the tokenizer's token table,
a fresh grammar's first request).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks_stamp import stamp, write_section

ROUNDS = int(os.environ.get("BENCH_CONSTRAIN_ROUNDS", "7"))
WORDS = ("the quick brown fox jumps over the lazy dog hello world a tiny model speaks in short sentences "
         "numbers one two three four five six seven eight nine ten once upon a time there was a little "
         "server that answered every request").split()
PROMPTS = ["a record:", "{", "hello", "the quick brown fox", "numbers", "once upon a time", "server", "x"]


def records(count: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        rec: dict[str, Any] = {"name": rng.choice(WORDS), "age": rng.randint(0, 99),
                               "tags": rng.sample(WORDS, rng.randint(0, 3)), "ok": rng.random() < 0.5}
        if rng.random() < 0.3:
            rec["note"] = " ".join(rng.sample(WORDS, 4))
        out.append(json.dumps(rec))
    return "\n".join(out) + "\n"


def build_model(path: Path) -> tuple[Any, Any]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    import argparse
    import inspect
    import json as json_module
    import textwrap

    text = records(3000)
    prose = "".join(inspect.getsource(m) for m in (argparse, json_module, textwrap, inspect))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([text, prose], trainers.BpeTrainer(
        vocab_size=2048, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
    torch.manual_seed(0)
    eos = fast.eos_token_id
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(fast), hidden_size=128, intermediate_size=320, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=512, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos))
    ids = torch.tensor(fast(text)["input_ids"])
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        starts = torch.randint(0, len(ids) - 129, (8,), generator=g)
        batch = torch.stack([ids[s : s + 128] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, fast


class _Timed:
    """Wraps a processor to add up the CPU seconds its thread spends in it (CPU time, so a
    loaded machine preempting the thread does not count)."""

    total = 0.0

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def error(self) -> Any:
        return self.inner.error

    def apply(self, row: Any) -> None:
        t = time.thread_time()
        self.inner.apply(row)
        _Timed.total += time.thread_time() - t

    def accept(self, token: int) -> bool:
        t = time.thread_time()
        done = self.inner.accept(token)
        _Timed.total += time.thread_time() - t
        return done


def _run(engine: Any, seqs: list[Any]) -> float:
    """Wall seconds to decode ``seqs``; the process's CPU seconds are added to ``_run.cpu``
    (this thread waits, torch has one thread: that is the engine thread's work)."""
    left = threading.Semaphore(0)
    for s in seqs:
        s.sink = lambda ev: left.release() if ev[0] == "finish" else None
    t, c = time.perf_counter(), time.process_time()
    engine.submit(seqs)
    for _ in seqs:
        left.acquire()
    _run.cpu = time.process_time() - c  # type: ignore[attr-defined]
    return time.perf_counter() - t


def measure() -> dict[str, Any]:
    import torch

    from llmos_serve import constrain, grammar
    from llmos_serve.engine import Engine, SamplingParams, Sequence

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        model, tok = build_model(Path(tmp))
        build_s = time.perf_counter() - t
    t = time.perf_counter()
    constrain.token_table(tok)
    table_s = time.perf_counter() - t
    gram = grammar.json_object()
    eos = tok.eos_token_id
    out: dict[str, Any] = {"build_s": build_s, "table_s": table_s, "vocab": len(tok)}
    engine = Engine(model, tok, max_batch_size=8, max_queue=64).start()
    try:
        # a fresh grammar's first request (every state a cache miss) against a warm one
        cold = constrain.TokenConstraint(gram, constrain.token_table(tok))
        seqs = [Sequence(tok(PROMPTS[0]).input_ids, SamplingParams(max_tokens=256, seed=99),
                         processor=cold.start())]
        out["cold_s"] = _run(engine, seqs)
        out["cold_tokens"] = seqs[0].completion_tokens
        warm = constrain.constraint(tok, gram)
        for width in (1, 8):
            ratios, cpu_ratios, proc, tokens, valid = [], [], [], 0, 0
            for r in range(ROUNDS + 1):  # round 0 warms the mask cache up
                prompts = [PROMPTS[(r * width + k) % len(PROMPTS)] for k in range(width)]
                _Timed.total = 0.0
                cons = [Sequence(tok(p).input_ids, SamplingParams(max_tokens=256, seed=1000 * r + k),
                                 processor=_Timed(warm.start())) for k, p in enumerate(prompts)]
                tc = _run(engine, cons)
                cc = _run.cpu  # type: ignore[attr-defined]
                in_proc = _Timed.total
                n = sum(s.completion_tokens for s in cons)
                plain = [Sequence(tok(p).input_ids, SamplingParams(max_tokens=s.completion_tokens, seed=1000 * r + k,
                                                                   logit_bias={eos: -100.0}))
                         for k, (p, s) in enumerate(zip(prompts, cons, strict=True))]
                tu = _run(engine, plain)
                cu = _run.cpu  # type: ignore[attr-defined]
                assert sum(s.completion_tokens for s in plain) == n
                if r == 0:
                    continue
                for s in cons:
                    try:
                        json.loads(s.text)
                        valid += 1
                    except ValueError:
                        pass
                ratios.append(tc / tu)
                cpu_ratios.append(cc / cu)
                proc.append(in_proc / n)
                tokens += n
                out.setdefault(f"tu_{width}", []).append(tu / n)
            out[f"ratio_{width}"] = statistics.median(ratios)
            out[f"cpu_ratio_{width}"] = statistics.median(cpu_ratios)
            out[f"proc_us_{width}"] = statistics.median(proc) * 1e6
            out[f"step_us_{width}"] = statistics.median(out[f"tu_{width}"]) * 1e6
            out[f"tokens_{width}"] = tokens
            out[f"valid_{width}"] = (valid, ROUNDS * width)
        out["hits"], out["misses"] = warm.hits, warm.misses
    finally:
        engine.stop()
    out["load"] = os.getloadavg()
    return out


def main() -> str:
    m = measure()
    text = f"""## Constrained decoding (`response_format`)

{stamp()} Load average while it ran: {m['load'][0]:.1f} (a 2-core machine shared with other sessions).

Model: the quickstart's size (`tiny` Llama, 128 wide, 3 layers) with a {m['vocab']:,}-token BPE, trained for a few seconds on JSON lines; the serving engine in process, one torch thread, temperature 1, `response_format: json_object` against no constraint with each sequence forced to the same number of tokens from the same prompts and seeds; {ROUNDS} alternating rounds after one warm-up round (medians).

| | one stream | 8 concurrent sequences |
|---|---:|---:|
| CPU seconds per token, constrained ÷ unconstrained | **{m['cpu_ratio_1']:.3f}×** | **{m['cpu_ratio_8']:.3f}×** |
| wall seconds per token, constrained ÷ unconstrained | {m['ratio_1']:.3f}× | {m['ratio_8']:.3f}× |
| CPU time in the JSON processor per token (mask + advance) | {m['proc_us_1']:.0f} µs | {m['proc_us_8']:.0f} µs |
| unconstrained time per token (context) | {m['step_us_1']:.0f} µs | {m['step_us_8']:.0f} µs |
| constrained outputs that `json.loads` parses | {m['valid_1'][0]} of {m['valid_1'][1]} | {m['valid_8'][0]} of {m['valid_8'][1]} |

- The CPU ratio is the overhead (the process's CPU time while each side decodes: the engine thread's work, one torch thread); the wall ratio is the same comparison by the clock, which other sessions' load moves by several per cent either way.
- One-off costs: the tokenizer's token table (each token's text, the tries) {m['table_s'] * 1e3:.0f} ms, once per loaded tokenizer; a grammar's first request with every state a cache miss took {m['cold_s']:.2f} s for {m['cold_tokens']} tokens. Mask cache over the measured rounds: {m['hits']:,} hits, {m['misses']:,} misses.
- An output that does not parse ran into `max_tokens` (256) before its object closed (`finish_reason: length`), as a request with too small a `max_tokens` does.
"""
    return write_section("constrain", text)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main())
