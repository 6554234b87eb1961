"""Training loop: llmos's `optimizer.train` loop against a plain hand-written PyTorch loop.

Targets: tokens/s ≥ 0.95× the plain loop; peak memory ≤ 1.2× of it.

Both sides train the same Llama-style model (the `tiny` preset's shape: 128 wide,
3 layers, vocabulary 2048), from the same initial weights, on the same token blocks
(128 tokens, batch 16), with AdamW, warmup + cosine and gradient clipping at 1.0.
The llmos side is the real thing: `llmos_train.loop.train` driven by a
`RunContext` whose metrics go through the runner's buffer into a real SQLite
registry and whose progress goes to a plain-text display, with lifecycle hooks
called through the plugin manager. The plain side is the loop one writes by hand
(`model(input_ids=x, labels=x).loss`, `clip_grad_norm_`, `step`, `zero_grad`).

Each measurement is a fresh process (so peak memory is its own), one torch thread,
the sides alternating A B A B...; the first 10 steps are warm-up, the next STEPS are
timed. Reported: the ratio of median tokens/s, and of peak RSS growth during training
(peak RSS minus RSS after imports and model creation) and of total peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP, STEPS, BATCH, BLOCK, VOCAB = 10, 60, 16, 128, 2048
ROUNDS = 3


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _peak_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _setup(workdir: Path):
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    # Zipf-like token stream: a realistic spread of ids
    tokens = np.minimum(rng.zipf(1.2, size=400 * BLOCK), VOCAB - 1).astype(np.uint16)
    path = workdir / "train.u16"
    tokens.tofile(path)
    blocks = np.memmap(path, dtype=np.uint16, mode="r", shape=(400, BLOCK))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=128, intermediate_size=320,
                                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=512, tie_word_embeddings=True))
    return model, blocks


def side_plain(workdir: Path) -> dict:
    import math
    import time

    import numpy as np
    import torch

    model, blocks = _setup(workdir)
    base = _rss_kib()
    data = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
    total = WARMUP + STEPS
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))

    def lr_lambda(i: int) -> float:
        step = i + 1
        if step <= 5:
            return step / 5
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 5) / (total - 5)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    gen = torch.Generator().manual_seed(0)
    model.train()
    t0 = 0.0
    for step in range(total):
        if step == WARMUP:
            t0 = time.perf_counter()
        idx = torch.randint(len(data), (BATCH,), generator=gen)
        x = data[idx]
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % 10 == 0:
            loss.item()  # what any loop that prints its loss does
    elapsed = time.perf_counter() - t0
    return {"tokens_per_s": STEPS * BATCH * (BLOCK - 1) / elapsed, "base_kib": base, "peak_kib": _peak_kib()}


def side_llmos(workdir: Path) -> dict:
    import io
    import time

    os.environ["LLMOS_HOME"] = str(workdir / "home")
    from llmos.context import RunContext
    from llmos.pipeline.display import Display
    from llmos.pipeline.runner import MetricBuffer
    from llmos.plugins import PluginManager
    from llmos.registry import open_registry
    from llmos_train.config import TrainConfig
    from llmos_train.loop import train
    from llmos_train.step import ContextIO

    model, blocks = _setup(workdir)
    reg = open_registry()
    run_id = reg.create_run(pipeline="bench", config={})
    display = Display(live=False, stream=io.StringIO())
    ctx = RunContext(run_id=run_id, spec=None, workdir=workdir / "run", seed=0, manager=PluginManager(load_entrypoints=False))
    ctx._metric_writer = MetricBuffer(reg, run_id)
    ctx._progress_factory = display.task
    base = _rss_kib()
    cfg = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.1, schedule="cosine", warmup_steps=5,
                      max_steps=WARMUP + STEPS, batch_size=BATCH, clip_grad_norm=1.0, log_every=10, threads=1)
    marks: dict[int, float] = {}

    class TimedIO(ContextIO):
        checkpoint_dir = None  # measured: the loop, not writing checkpoints

        def log_train(self, step: int, metrics: dict) -> None:
            super().log_train(step, metrics)
            marks[step] = time.perf_counter()

    with ctx.progress(cfg.max_steps, "train") as bar:
        tio = TimedIO(ctx, bar)
        tio.checkpoint_dir = None
        train(model, blocks, blocks[:0], cfg, tio, seed=0)
    ctx._metric_writer.flush()
    elapsed = marks[WARMUP + STEPS] - marks[WARMUP]
    rows = len(reg.run_metrics(run_id))
    return {"tokens_per_s": STEPS * BATCH * (BLOCK - 1) / elapsed, "base_kib": base, "peak_kib": _peak_kib(),
            "metric_rows": rows}


def _measure(side: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="llmos-bench-train-") as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cp = subprocess.run([sys.executable, __file__, side, tmp], capture_output=True, text=True, env=env)
        if cp.returncode != 0:
            raise RuntimeError(f"{side} side failed:\n{cp.stderr[-3000:]}")
        return json.loads(cp.stdout.strip().splitlines()[-1])


def main() -> str:
    from benchmarks_stamp import stamp  # type: ignore[import-not-found]

    results: dict[str, list[dict]] = {"plain": [], "llmos": []}
    for _ in range(ROUNDS):
        for side in ("plain", "llmos"):
            results[side].append(_measure(side))
    tps = {s: statistics.median(r["tokens_per_s"] for r in rs) for s, rs in results.items()}
    grow = {s: statistics.median(r["peak_kib"] - r["base_kib"] for r in rs) for s, rs in results.items()}
    peak = {s: statistics.median(r["peak_kib"] for r in rs) for s, rs in results.items()}
    r_tps = tps["llmos"] / tps["plain"]
    r_grow = grow["llmos"] / grow["plain"]
    r_peak = peak["llmos"] / peak["plain"]
    ok = lambda cond: "✅" if cond else "❌"  # noqa: E731
    lines = [
        "## Training loop (`optimizer.train`) vs a plain PyTorch loop",
        "",
        stamp(),
        "",
        f"Llama-style model 128 wide × 3 layers, vocab {VOCAB}, batch {BATCH} × {BLOCK} tokens, AdamW + warmup/cosine, "
        f"clipping; {STEPS} timed steps after {WARMUP} warm-up, one torch thread, {ROUNDS} fresh processes per side "
        "alternating; medians. The llmos side records metrics every 10 steps through the runner's buffer into "
        f"SQLite ({results['llmos'][0]['metric_rows']} rows) and drives a progress display.",
        "",
        "| measure | plain loop | llmos loop | ratio | target |",
        "|---|---:|---:|---:|---|",
        f"| tokens/s | {tps['plain']:,.0f} | {tps['llmos']:,.0f} | **{r_tps:.3f}×** | ≥ 0.95× {ok(r_tps >= 0.95)} |",
        f"| peak RSS growth while training (MiB) | {grow['plain'] / 1024:,.1f} | {grow['llmos'] / 1024:,.1f} | "
        f"**{r_grow:.3f}×** | ≤ 1.2× {ok(r_grow <= 1.2)} |",
        f"| total peak RSS (MiB) | {peak['plain'] / 1024:,.0f} | {peak['llmos'] / 1024:,.0f} | {r_peak:.3f}× | "
        f"≤ 1.2× {ok(r_peak <= 1.2)} |",
        "",
        "Per-process tokens/s — plain: " + ", ".join(f"{r['tokens_per_s']:,.0f}" for r in results["plain"])
        + "; llmos: " + ", ".join(f"{r['tokens_per_s']:,.0f}" for r in results["llmos"]) + ".",
        "",
    ]
    text = "\n".join(lines)
    out = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "train.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("plain", "llmos"):
        fn = side_plain if sys.argv[1] == "plain" else side_llmos
        print(json.dumps(fn(Path(sys.argv[2]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(main())
