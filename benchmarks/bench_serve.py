"""Serving: `llmos serve` against in-process generation, batching, and a load test
with alias switches.

Model: a `small`-preset Llama (256 hidden, 10 layers, 8 heads, MLP 768; ~10M
parameters with a 4096-token BPE trained here on the repository's Markdown).
Its weights are untrained (built from config): throughput does not depend on
what the weights say, and nothing is downloaded. Registered twice (two seeds) in
a throw-away registry; the server is a real `llmos serve` subprocess on
127.0.0.1 following `bench@production`.

Both serving engines run, each in its own `llmos serve` process: `--engine eager`
(PyTorch) and `--engine ort` (ONNX Runtime; the server exports `bench:1` once into its
engine cache before it is ready: a format-3 graph, which reads the KV cache in place).

Figures (ratios measured side by side in one run):

1. single stream, per engine: tokens/s of one client through HTTP (non-streaming
   completions, greedy, 64 tokens) ÷ tokens/s of the same engine's model in process
   (`model.generate()`: transformers for eager, `OnnxCausalLM.generate` for ort), same
   prompts, alternated; target ≥ 0.9.
2. ort ÷ eager tokens/s through HTTP, at 1 client and at 8 concurrent clients; target ≥ 1.5.
3. 8 concurrent clients: aggregate tokens/s ÷ the same 16 requests sent one by one, per
   engine; target ≥ 3.
4. load test (eager server): 2,000 requests (max_tokens 8) from 32 concurrent clients while the
   alias is moved 10 times (alternating versions 1 and 2, half through POST /admin/alias, half
   in the registry as `llmos deploy promote` does, followed by the server's watcher):
   5xx, dropped requests (no response), and responses whose version header was
   not an alias target at any moment of the request; target: all zero.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
NEW_TOKENS = 64
#: torch threads on both sides (server process and in-process generate): equal footing,
#: and no oversubscription on a shared machine
THREADS = 1
PROMPTS = [
    "The registry stores every model version",
    "Plugins provide components for six stages",
    "A small model trained on the machine",
    "Serving follows the production alias",
    "Once upon a time a language model",
    "Batching groups concurrent requests",
    "The quick brown fox jumps over",
    "Metrics are exported in Prometheus format",
]


def _say(msg: str) -> None:
    print(f"[bench_serve] {msg}", file=sys.stderr, flush=True)


def _corpus() -> str:
    parts = []
    for p in sorted(ROOT.rglob("*.md")):
        if ".venv" in p.parts or "node_modules" in p.parts:
            continue
        try:
            parts.append(p.read_text(errors="ignore"))
        except OSError:
            pass
    return "\n".join(parts) or "hello world " * 1000


def build_models(out: Path) -> list[Path]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_corpus()], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    try:  # the model plugin's `small` preset, when installed
        from llmos_models.build import PRESETS

        p = PRESETS["llama"]["small"]
    except ImportError:
        p = {"hidden_size": 256, "num_layers": 10, "num_heads": 8, "intermediate_size": 768}
    eos = fast.eos_token_id
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(fast), hidden_size=p["hidden_size"], num_hidden_layers=p["num_layers"],
            num_attention_heads=p["num_heads"], num_key_value_heads=p["num_heads"],
            intermediate_size=p["intermediate_size"], max_position_embeddings=512, tie_word_embeddings=True,
            bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
        )
        model = LlamaForCausalLM(cfg).eval()
        path = out / f"bench-{seed}"
        model.save_pretrained(path)
        fast.save_pretrained(path)
        paths.append(path)
    return paths


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def single_stream(sides: dict[str, tuple[str, Any]], tokenizer: Any, rounds: int = 3) -> dict[str, dict[str, float]]:
    """For each prompt, alternate over the engines ``sides`` (``name -> (url, generate)``,
    ``generate(ids) -> new token count`` in process): in-process generation, then one HTTP
    request, same prompt and length. Median tokens/s per engine and side."""
    import httpx
    import torch

    tps: dict[str, dict[str, list[float]]] = {e: {"local": [], "http": []} for e in sides}
    with httpx.Client(timeout=300) as client, torch.inference_mode():
        for _ in range(rounds):
            for prompt in PROMPTS[:4]:
                ids = tokenizer(prompt, return_tensors="pt").input_ids
                for e, (url, generate) in sides.items():
                    t0 = time.perf_counter()
                    n = generate(ids)
                    tps[e]["local"].append(n / (time.perf_counter() - t0))
                    t0 = time.perf_counter()
                    resp = client.post(url + "/v1/completions", json={
                        "model": "bench", "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
                    }).json()
                    tps[e]["http"].append(resp["usage"]["completion_tokens"] / (time.perf_counter() - t0))
    return {e: {k: statistics.median(v) for k, v in d.items()} for e, d in tps.items()}


def eager_generate(model: Any, tokenizer: Any) -> Any:
    import torch

    def run(ids: Any) -> int:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        return out.shape[1] - ids.shape[1]

    return run


def ort_generate(model: Any) -> Any:
    def run(ids: Any) -> int:
        return model.generate(ids, max_new_tokens=NEW_TOKENS).shape[1] - ids.shape[1]

    return run


def concurrency(urls: dict[str, str], clients: int = 8, per_client: int = 2) -> dict[str, dict[str, float]]:
    """Per engine (``name -> url``): aggregate tokens/s of the same ``clients * per_client``
    requests sent one by one and from ``clients`` concurrent clients; the engines
    alternate (one by one on each, then concurrent on each) so they share the minutes."""
    import httpx

    jobs = [PROMPTS[i % len(PROMPTS)] + f" ({i})" for i in range(clients * per_client)]

    def one(client: httpx.Client, url: str, prompt: str) -> int:
        r = client.post(url + "/v1/completions", json={
            "model": "bench", "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
        })
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    def sequential(url: str) -> float:
        with httpx.Client(timeout=600) as c:
            t0 = time.perf_counter()
            tokens = sum(one(c, url, p) for p in jobs)
            return tokens / (time.perf_counter() - t0)

    def concurrent(url: str) -> float:
        totals = [0] * clients

        def worker(k: int) -> None:
            with httpx.Client(timeout=600) as c:
                for p in jobs[k::clients]:
                    totals[k] += one(c, url, p)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(totals) / (time.perf_counter() - t0)

    out: dict[str, dict[str, float]] = {e: {} for e in urls}
    for e, url in urls.items():
        out[e]["sequential"] = sequential(url)
    for e, url in urls.items():
        out[e]["concurrent"] = concurrent(url)
    return out


def load_test(url: str, token: str, registry: Any, total: int = 2000, clients: int = 32,
              switches: int = 10) -> dict[str, Any]:
    import httpx

    lock = threading.Lock()
    next_job = [0]
    done = [0]
    records: list[tuple[float, float, int, str]] = []  # start, end, status, version
    dropped = [0]
    # alias timeline: (call start, call end, old, new)
    timeline: list[tuple[float, float, int, int]] = []
    current = [1]

    def client_loop() -> None:
        with httpx.Client(timeout=120) as c:
            while True:
                with lock:
                    if next_job[0] >= total:
                        return
                    i = next_job[0]
                    next_job[0] += 1
                t0 = time.monotonic()
                try:
                    r = c.post(url + "/v1/completions", json={
                        "model": "bench", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 8, "temperature": 0.7,
                        "seed": i,
                    })
                    rec = (t0, time.monotonic(), r.status_code, r.headers.get("x-llmos-model-version", ""))
                except httpx.HTTPError:
                    with lock:
                        dropped[0] += 1
                    continue
                with lock:
                    records.append(rec)
                    done[0] += 1

    def switcher() -> None:
        with httpx.Client(timeout=120) as c:
            for k in range(switches):
                target = (k + 1) * total // (switches + 1)
                while done[0] < target and (next_job[0] < total or done[0] + dropped[0] < total):
                    time.sleep(0.01)
                new = 2 if current[0] == 1 else 1
                a = time.monotonic()
                if k % 2 == 0:  # the admin endpoint: loads, moves the alias, switches, then answers
                    r = c.post(url + "/admin/alias", json={"alias": "production", "version": new},
                               headers={"Authorization": f"Bearer {token}"})
                    r.raise_for_status()
                else:  # the registry, as `llmos deploy promote` does: the server's watcher follows
                    registry.set_alias("bench", "production", new)
                    while c.get(url + "/ready").json()["primary"]["version"] != f"bench:{new}":
                        time.sleep(0.01)
                timeline.append((a, time.monotonic(), current[0], new))
                current[0] = new

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    sw = threading.Thread(target=switcher)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    sw.start()
    for t in threads:
        t.join()
    sw.join()
    elapsed = time.perf_counter() - t0

    def allowed(start: float, end: float) -> set[str]:
        ok = set()
        target = 1
        for a, b, old, new in timeline:
            if b < start:
                target = new
        ok.add(f"bench:{target}")
        for a, b, old, new in timeline:
            if a <= end and b >= start or (start <= a <= end):
                ok.update({f"bench:{old}", f"bench:{new}"})
        return ok

    mismatched = sum(1 for s, e, st, v in records if st == 200 and v not in allowed(s, e))
    statuses: dict[int, int] = {}
    for *_, st, _v in records:
        statuses[st] = statuses.get(st, 0) + 1
    versions = {v for *_, v in records}
    return {
        "requests": total, "answered": len(records), "dropped": dropped[0] + (total - len(records) - dropped[0]),
        "5xx": sum(n for st, n in statuses.items() if st >= 500), "statuses": statuses,
        "mismatched": mismatched, "switches": len(timeline), "elapsed_s": elapsed, "versions": sorted(versions),
    }


def main() -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from benchmarks_stamp import stamp, write_section  # type: ignore[import-not-found]

    torch.set_num_threads(THREADS)
    load_start = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="llmos-bench-serve-"))
    home = work / "home"
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-serve,llmos-registry")
    env.pop("LLMOS_DATABASE_URL", None)
    _say(f"building two small-preset models in {work}")
    paths = build_models(work)
    os.environ["LLMOS_HOME"] = str(home)
    os.environ.pop("LLMOS_DATABASE_URL", None)
    from llmos.registry import open_registry

    reg = open_registry()
    for p in paths:
        reg.register_version("bench", p, description="untrained small-preset Llama for benchmarks")
    reg.set_alias("bench", "production", 1)

    token = "bench-token"
    servers: dict[str, tuple[str, subprocess.Popen]] = {}

    def start(engine: str, ref: str) -> None:
        port = _free_port()
        proc = subprocess.Popen(
            [str(VENV_BIN / "llmos"), "serve", ref, "--port", str(port), "--admin-token", token,
             "--max-batch-size", "32", "--max-queue", "256", "--no-access-log", "--poll-interval", "1",
             "--threads", str(THREADS), "--engine", engine],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        servers[engine] = (f"http://127.0.0.1:{port}", proc)

    try:
        start("eager", "bench@production")  # follows the alias in the load test
        start("ort", "bench:1")  # exports bench:1 to ONNX into the engine cache first (once)
        _wait_ready(servers["eager"][0], servers["eager"][1])
        _say("ort server: exporting bench:1 to ONNX, then loading")
        _wait_ready(servers["ort"][0], servers["ort"][1], timeout=1800)
        eager_url, ort_url = servers["eager"][0], servers["ort"][0]
        from llmos_export.runtime import OnnxCausalLM
        from llmos_serve.engines import cache_root, weights_key

        model = AutoModelForCausalLM.from_pretrained(paths[0]).eval()
        tokenizer = AutoTokenizer.from_pretrained(paths[0])
        onnx = OnnxCausalLM(cache_root() / "onnx" / weights_key(reg.checkout("bench:1")), threads=THREADS)
        params = sum(p.numel() for p in model.parameters())
        sides = {"eager": (eager_url, eager_generate(model, tokenizer)), "ort": (ort_url, ort_generate(onnx))}
        _say("single stream: warm-up")
        single_stream(sides, tokenizer, rounds=1)
        _say("single stream: HTTP vs in-process generate, both engines, alternating")
        ss = single_stream(sides, tokenizer, rounds=3)
        urls = {"eager": eager_url, "ort": ort_url}
        del model, onnx
        _say(f"single stream: {ss}; 8 clients vs one by one, both engines")
        conc = concurrency(urls)
        _say(f"concurrency: {conc}; load test (2000 requests, 32 clients, 10 alias switches)")
        load = load_test(eager_url, token, reg)
        _say(f"load test: {load}")
    finally:
        for _url, proc in servers.values():
            proc.send_signal(signal.SIGINT)
        for _url, proc in servers.values():
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    r1 = {e: ss[e]["http"] / ss[e]["local"] for e in ss}
    r2 = {e: conc[e]["concurrent"] / conc[e]["sequential"] for e in conc}
    x1 = ss["ort"]["http"] / ss["eager"]["http"]
    x8 = conc["ort"]["concurrent"] / conc["eager"]["concurrent"]
    ok3 = load["5xx"] == 0 and load["dropped"] == 0 and load["mismatched"] == 0 and load["answered"] == load["requests"]

    def mark(ok: bool) -> str:
        return "✅" if ok else "❌"

    load_avg = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "## Serving (`llmos serve`)",
        "",
        stamp(),
        "",
        f"Machine load: the load average was {load_start} (1, 5, 15 min) at the start of the run and {load_avg} at "
        f"the end, on "
        f"{os.cpu_count()} CPUs shared with other work, so absolute tokens/s move with the neighbours' load; "
        "the ratios compare sides measured alternately in the same minutes.",
        "",
        f"Model: `small`-preset Llama, {params / 1e6:.1f}M parameters, untrained (built from config; "
        "throughput does not depend on the weights), 4096-token BPE. Servers: `llmos serve bench@production "
        "--engine eager` and `llmos serve bench:1 --engine ort`, each in its own process on 127.0.0.1; "
        f"{THREADS} thread on each side (`--threads {THREADS}`; ONNX Runtime intra-op threads = torch's).",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
    ]
    for e in ("eager", "ort"):
        lines.append(
            f"| {e}: single stream, HTTP tokens/s ÷ in-process generate tokens/s ({NEW_TOKENS} tokens, greedy) "
            f"| **{r1[e]:.2f}×** ({ss[e]['http']:.0f} vs {ss[e]['local']:.0f} tok/s) | ≥ 0.9× | {mark(r1[e] >= 0.9)} |")
    lines += [
        f"| ort ÷ eager tokens/s, 1 client over HTTP | **{x1:.2f}×** ({ss['ort']['http']:.0f} vs "
        f"{ss['eager']['http']:.0f} tok/s) | ≥ 1.5× | {mark(x1 >= 1.5)} |",
        f"| ort ÷ eager aggregate tokens/s, 8 concurrent clients | **{x8:.2f}×** ({conc['ort']['concurrent']:.0f} vs "
        f"{conc['eager']['concurrent']:.0f} tok/s) | ≥ 1.5× | {mark(x8 >= 1.5)} |",
    ]
    for e in ("eager", "ort"):
        lines.append(
            f"| {e}: 8 concurrent clients ÷ the same 16 requests one by one (aggregate tokens/s) "
            f"| **{r2[e]:.2f}×** ({conc[e]['concurrent']:.0f} vs {conc[e]['sequential']:.0f} tok/s) | ≥ 3× "
            f"| {mark(r2[e] >= 3)} |")
    lines += [
        f"| load test (eager): {load['requests']} requests, 32 clients, {load['switches']} alias switches "
        f"({load['elapsed_s']:.0f} s) | 5xx {load['5xx']}, dropped {load['dropped']}, "
        f"version mismatches {load['mismatched']}; versions seen {', '.join(load['versions'])} "
        f"| all 0 | {mark(ok3)} |",
        "",
        "Single stream alternates the four sides (each engine in process and over HTTP) prompt by prompt (median of "
        "12 each); the concurrency figures run the 16 requests one by one on eager then ort, then from 8 clients on "
        "eager then ort. The ort engine runs a format-3 graph (the KV cache read in place from preallocated "
        "buffers, only the new tokens' keys and values returned) with each row at its own length. The load test moves "
        "`bench@production` between versions 1 and 2, alternately through `POST /admin/alias` (which loads the "
        "new version beside the old one and switches atomically before answering) and directly in the registry "
        "(as `llmos deploy promote` does; the server's watcher, polling every second, loads and switches). A "
        "response's `X-Llmos-Model-Version` must name a version that was the alias target at some moment between "
        "the request's start and end, where a move counts as in progress from the moment it starts until the "
        "server reports the new version. The replicated load test (haproxy, a replica killed) is in "
        "[scale.md](scale.md).",
        "",
    ]
    return write_section("serve", "\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(main())
