"""Training loop: llmos's `optimizer.train` loop against a plain hand-written PyTorch loop
and against Hugging Face's ``transformers.Trainer``.

Targets: tokens/s ≥ 0.97× the plain loop and ≥ 1.0× HF Trainer; peak memory ≤ 1.2× the plain loop's.

Both sides train the same Llama-style model (the `tiny` preset's shape: 128 wide,
3 layers, vocabulary 2048), from the same initial weights, on the same token blocks
(128 tokens, batch 16), with AdamW, warmup + cosine and gradient clipping at 1.0.
The llmos side is the real thing: `llmos_train.loop.train` driven by a
`RunContext` whose metrics go through the runner's buffer into a real SQLite
registry and whose progress goes to a plain-text display, with lifecycle hooks
called through the plugin manager. The plain side is the loop one writes by hand
(`model(input_ids=x, labels=x).loss`, `clip_grad_norm_`, `step`, `zero_grad`). The HF
side is ``transformers.Trainer`` on the same model, the same blocks (a Dataset of
``{"input_ids", "labels"}`` rows), batch, the same AdamW and warmup + cosine (passed as
``optimizers=``), ``max_grad_norm=1.0``, logging every 10 steps, no saving, no reports.

Speed: the three loops run in one process, one torch thread, taking turns every 10 steps
(each in its own thread, handing over to the next at each of its logging steps: the
llmos loop from its ``log_train``, the Trainer from a callback's ``on_step_end``), so all
see the same machine load at the same moments — on a shared machine, separate runs
minutes apart differ by more than the effect measured. Memory: each side alone in a
fresh process; growth = peak RSS minus RSS after imports and model creation.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WARMUP, STEPS, BATCH, BLOCK, VOCAB = 20, 120, 16, 128, 2048
LOG_EVERY = 10
MEM_STEPS, MEM_ROUNDS = 20, 2


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


def _optimizer(model):
    """AdamW and warmup + cosine, as the plain loop and the Trainer get them (llmos's
    `adamw`/`cosine` with the same settings: the same decay groups aside)."""
    import math

    import torch

    total = WARMUP + STEPS
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95))

    def lr_lambda(i: int) -> float:
        step = i + 1
        if step <= 5:
            return step / 5
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 5) / (total - 5)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)


def _plain_parts(model, blocks):
    import numpy as np
    import torch

    data = torch.from_numpy(np.asarray(blocks, dtype=np.int64))
    opt, sched = _optimizer(model)
    gen = torch.Generator().manual_seed(0)
    model.train()

    def step(i: int) -> None:
        idx = torch.randint(len(data), (BATCH,), generator=gen)
        x = data[idx]
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if (i + 1) % LOG_EVERY == 0:
            loss.item()  # what any loop that prints its loss does

    return step


def _llmos_parts(workdir: Path):
    import io
    import time

    os.environ["LLMOS_HOME"] = str(workdir / "home")
    from llmos.context import RunContext
    from llmos.pipeline.display import Display
    from llmos.runs import MetricBuffer
    from llmos.plugins import PluginManager
    from llmos.registry import open_registry
    from llmos_train.config import TrainConfig
    from llmos_train.step import ContextIO

    reg = open_registry()
    run_id = reg.create_run(pipeline="bench", config={})
    display = Display(live=False, stream=io.StringIO())
    ctx = RunContext(run_id=run_id, spec=None, workdir=workdir / "run", seed=0,
                     manager=PluginManager(load_entrypoints=False))
    ctx._metric_writer = MetricBuffer(reg, run_id)
    ctx._progress_factory = display.task
    cfg = TrainConfig(optimizer="adamw", lr=3e-3, weight_decay=0.1, schedule="cosine", warmup_steps=5,
                      max_steps=WARMUP + STEPS, batch_size=BATCH, clip_grad_norm=1.0, log_every=LOG_EVERY,
                      threads=1)
    return reg, run_id, ctx, cfg, ContextIO, time


def _hf_trainer(model, blocks, workdir: Path, max_steps: int, callbacks: list):
    """``transformers.Trainer`` on ``model`` and ``blocks`` with the same optimizer and schedule."""
    import numpy as np
    import torch
    from transformers import Trainer, TrainingArguments

    class Blocks(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(blocks)

        def __getitem__(self, i: int) -> dict:
            x = torch.from_numpy(np.asarray(blocks[i], dtype=np.int64))
            return {"input_ids": x, "labels": x}

    args = TrainingArguments(output_dir=str(workdir / "hf"), max_steps=max_steps, per_device_train_batch_size=BATCH,
                             max_grad_norm=1.0, logging_steps=LOG_EVERY, report_to=[], save_strategy="no",
                             use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0, log_level="error")
    return Trainer(model=model, args=args, train_dataset=Blocks(), optimizers=_optimizer(model), callbacks=callbacks)


def side_memory(kind: str, workdir: Path) -> dict:
    """Peak memory of one side, alone in this process."""
    model, blocks = _setup(workdir)
    if kind == "plain":
        base = _rss_kib()
        step = _plain_parts(model, blocks)
        for i in range(MEM_STEPS):
            step(i)
        return {"base_kib": base, "peak_kib": _peak_kib()}
    if kind == "hf":
        base = _rss_kib()
        _hf_trainer(model, blocks, workdir, MEM_STEPS, []).train()
        return {"base_kib": base, "peak_kib": _peak_kib()}
    from llmos_train.loop import train

    reg, run_id, ctx, cfg, ContextIO, _ = _llmos_parts(workdir)
    cfg = cfg.model_copy(update={"max_steps": MEM_STEPS})
    base = _rss_kib()
    with ctx.progress(cfg.max_steps, "train") as bar:
        tio = ContextIO(ctx, bar)
        tio.checkpoint_dir = None
        train(model, blocks, blocks[:0], cfg, tio, seed=0)
    return {"base_kib": base, "peak_kib": _peak_kib()}


class _Turns:
    """Round-robin hand-over between threads: one side runs at a time."""

    def __init__(self, names: list[str]) -> None:
        import threading

        self.order, self.done = names, set()
        self.sem = {n: threading.Semaphore(0) for n in names}

    def wait(self, name: str) -> None:
        self.sem[name].acquire()

    def pass_on(self, name: str) -> None:
        i = self.order.index(name)
        for k in range(1, len(self.order) + 1):
            nxt = self.order[(i + k) % len(self.order)]
            if nxt not in self.done:
                self.sem[nxt].release()
                return

    def finish(self, name: str) -> None:
        self.done.add(name)
        if len(self.done) < len(self.order):
            self.pass_on(name)


def side_speed(workdir: Path) -> dict:
    """The three loops in this process, taking turns every LOG_EVERY steps (each in a
    thread that hands over at each of its logging steps): all see the same machine load
    at the same moments. Returns the per-chunk times of each side."""
    import copy
    import threading

    from transformers import TrainerCallback

    from llmos_train.loop import train

    model, blocks = _setup(workdir)
    plain_model, hf_model = copy.deepcopy(model), copy.deepcopy(model)
    reg, run_id, ctx, cfg, ContextIO, time = _llmos_parts(workdir)
    plain_step = _plain_parts(plain_model, blocks)
    turns = _Turns(["plain", "llmos", "hf"])
    chunks: dict[str, list[float]] = {"plain": [], "llmos": [], "hf": []}
    start = {"llmos": 0.0, "hf": 0.0}

    def hand_over(side: str) -> None:
        chunks[side].append(time.perf_counter() - start[side])
        turns.pass_on(side)
        turns.wait(side)
        start[side] = time.perf_counter()

    class TakingTurns(ContextIO):
        def log_train(self, step: int, metrics: dict) -> None:
            super().log_train(step, metrics)
            hand_over("llmos")

    class TrainerTurns(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if state.global_step % LOG_EVERY == 0:
                hand_over("hf")

    trainer = _hf_trainer(hf_model, blocks, workdir, cfg.max_steps, [TrainerTurns()])

    def run_llmos() -> None:
        turns.wait("llmos")
        start["llmos"] = time.perf_counter()
        with ctx.progress(cfg.max_steps, "train") as bar:
            tio = TakingTurns(ctx, bar)
            tio.checkpoint_dir = None
            train(model, blocks, blocks[:0], cfg, tio, seed=0)
        turns.finish("llmos")

    def run_hf() -> None:
        turns.wait("hf")
        start["hf"] = time.perf_counter()
        trainer.train()
        turns.finish("hf")

    def run_plain() -> None:
        i = 0
        while i < cfg.max_steps:
            turns.wait("plain")
            t0 = time.perf_counter()
            for _ in range(LOG_EVERY):
                plain_step(i)
                i += 1
            chunks["plain"].append(time.perf_counter() - t0)
            if i < cfg.max_steps:
                turns.pass_on("plain")
        turns.finish("plain")

    threads = [threading.Thread(target=f) for f in (run_plain, run_llmos, run_hf)]
    for t in threads:
        t.start()
    turns.sem["plain"].release()
    for t in threads:
        t.join()
    ctx._metric_writer.flush()
    skip = WARMUP // LOG_EVERY
    out = {side: c[skip:] for side, c in chunks.items()}
    if not all(len(c) == STEPS // LOG_EVERY for c in out.values()):
        raise RuntimeError(f"uneven chunks: { {k: len(v) for k, v in out.items()} }")
    return {**out, "metric_rows": len(reg.run_metrics(run_id))}


def _measure(*args: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="llmos-bench-train-") as tmp:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cp = subprocess.run([sys.executable, __file__, *args, tmp], capture_output=True, text=True, env=env)
        if cp.returncode != 0:
            raise RuntimeError(f"{args} failed:\n{cp.stderr[-3000:]}")
        return json.loads(cp.stdout.strip().splitlines()[-1])


def main() -> str:
    import time

    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    load0, t0 = os.getloadavg()[0], time.perf_counter()
    speed = _measure("speed")
    load1 = os.getloadavg()[0]
    sides = ("plain", "llmos", "hf")
    tokens_chunk = LOG_EVERY * BATCH * (BLOCK - 1)
    tps = {s: tokens_chunk * len(speed[s]) / sum(speed[s]) for s in sides}
    paired = {s: statistics.median(p / q for p, q in zip(speed[s], speed["llmos"], strict=True))
              for s in ("plain", "hf")}
    mem: dict[str, list[dict]] = {s: [] for s in sides}
    for _ in range(MEM_ROUNDS):
        for side in sides:
            mem[side].append(_measure("memory", side))
    wall = time.perf_counter() - t0
    grow = {s: statistics.median(r["peak_kib"] - r["base_kib"] for r in rs) for s, rs in mem.items()}
    peak = {s: statistics.median(r["peak_kib"] for r in rs) for s, rs in mem.items()}
    r_tps = {s: tps["llmos"] / tps[s] for s in ("plain", "hf")}
    r_grow = {s: grow["llmos"] / grow[s] for s in ("plain", "hf")}
    r_peak = {s: peak["llmos"] / peak[s] for s in ("plain", "hf")}
    ok = lambda cond: "✅" if cond else "❌"  # noqa: E731
    lines = [
        "## Training loop (`optimizer.train`) vs a plain PyTorch loop and HF Trainer",
        "",
        stamp(),
        "",
        f"Llama-style model 128 wide × 3 layers, vocab {VOCAB}, batch {BATCH} × {BLOCK} tokens, AdamW + "
        "warmup/cosine, clipping at 1.0, one torch thread. **Speed**: the three loops in one process taking turns "
        f"every {LOG_EVERY} steps (each in a thread that hands over at its logging steps: llmos from its "
        "`log_train`, the Trainer from a callback's `on_step_end`), so all see the same machine load; "
        f"{STEPS} timed steps per side after {WARMUP} warm-up. The llmos side is `llmos_train.loop.train` with "
        "a `RunContext`: metrics through the runner's buffer into a real SQLite registry "
        f"({speed['metric_rows']} rows), lifecycle hooks through the plugin manager, a progress display. The HF "
        "side is `transformers.Trainer` (CPU, no saving, no reports, logging every "
        f"{LOG_EVERY} steps) on the same model, blocks, AdamW and schedule (`optimizers=`), `max_grad_norm=1.0`. "
        f"**Memory**: each side alone in a fresh process ({MEM_STEPS} steps, {MEM_ROUNDS} alternating rounds, "
        "medians); growth = peak RSS minus RSS after imports and model creation. "
        f"Load average (1 min) {load0:.1f} at the start, {load1:.1f} after the speed run, on a shared machine; "
        f"whole benchmark {wall:.0f} s.",
        "",
        "| measure | plain loop | HF Trainer | llmos loop | llmos / plain | llmos / HF | target |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| tokens/s | {tps['plain']:,.0f} | {tps['hf']:,.0f} | {tps['llmos']:,.0f} | **{r_tps['plain']:.3f}×** | "
        f"**{r_tps['hf']:.3f}×** | ≥ 0.97× plain {ok(r_tps['plain'] >= 0.97)}, ≥ 1.0× HF {ok(r_tps['hf'] >= 1.0)} |",
        f"| tokens/s, median of paired {LOG_EVERY}-step chunks | | | | {paired['plain']:.3f}× | {paired['hf']:.3f}× | |",
        f"| peak RSS growth while training (MiB) | {grow['plain'] / 1024:,.1f} | {grow['hf'] / 1024:,.1f} | "
        f"{grow['llmos'] / 1024:,.1f} | **{r_grow['plain']:.3f}×** | {r_grow['hf']:.3f}× | "
        f"≤ 1.2× plain {ok(r_grow['plain'] <= 1.2)} |",
        f"| total peak RSS (MiB) | {peak['plain'] / 1024:,.0f} | {peak['hf'] / 1024:,.0f} | {peak['llmos'] / 1024:,.0f} | "
        f"{r_peak['plain']:.3f}× | {r_peak['hf']:.3f}× | ≤ 1.2× plain {ok(r_peak['plain'] <= 1.2)} |",
        "",
    ]
    text = "\n".join(lines)
    return write_section("train", text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "speed":
        print(json.dumps(side_speed(Path(sys.argv[2]))))
    elif len(sys.argv) == 4 and sys.argv[1] == "memory":
        print(json.dumps(side_memory(sys.argv[2], Path(sys.argv[3]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        print(main())
