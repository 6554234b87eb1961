"""A real `llmos serve` process with llmos-monitor installed records its requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

LLMOS = str(Path(sys.executable).parent / "llmos")
SECRET = "hunter2"
TEXT = "the quick brown fox jumps over the lazy dog. a tiny model answers every request. " * 40


def _tiny_model(path: Path) -> Path:
    """A ~50k-parameter Llama with a byte-level BPE trained here (nothing downloaded)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    eos = fast.eos_token_id
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    LlamaForCausalLM(cfg).eval().save_pretrained(path)
    fast.save_pretrained(path)
    return path


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json",
                                                                  "authorization": f"Bearer {SECRET}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_serve_process_records_a_serve_run(tmp_path: Path, h: Any) -> None:
    model = _tiny_model(tmp_path / "tiny")
    home = tmp_path / "home"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS="llmos-serve,llmos-monitor,llmos-registry",
               LLMOS_MONITOR_INTERVAL="0.2")
    env.pop("LLMOS_DATABASE_URL", None)
    from llmos.registry import open_registry

    reg = open_registry(url=f"sqlite:///{home / 'llmos.db'}", home=home)  # schema made before the server starts
    # a secret on the command line is recorded as *** (issue 12.2)
    proc = subprocess.Popen([LLMOS, "serve", str(model), "--admin-token", SECRET, f"--api-key={SECRET}",
                             "--port", str(port), "--threads", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/ready", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    f"llmos serve did not start:\n{proc.stdout.read() if proc.stdout else ''}")
                time.sleep(0.3)
        usage = []
        for i in range(3):
            out = _post(base + "/v1/completions", {"model": "tiny", "prompt": "the quick", "max_tokens": 2 + i})
            usage.append(out["usage"])
        time.sleep(1.0)  # the server notifies plugins from a background thread
    finally:
        proc.send_signal(signal.SIGINT)  # graceful stop: the monitor finishes the run at exit
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise

    runs = reg.list_runs(pipeline="serve")
    assert len(runs) == 1, [r.id for r in runs]
    run = reg.get_run(runs[0].id)
    assert run.status == "completed" and run.summary["requests"] == 3
    got = {p["name"]: p["value"] for p in reg.run_metrics(run.id, kind="request")}
    label = next(k for k in got if k.startswith("requests["))[len("requests"):]
    assert label.endswith(" /v1/completions]")
    assert got[f"requests{label}"] == 3 and got[f"errors{label}"] == 0
    assert got[f"completion_tokens.sum{label}"] == sum(u["completion_tokens"] for u in usage)
    assert got[f"prompt_tokens.sum{label}"] == sum(u["prompt_tokens"] for u in usage)
    assert 0 < got[f"latency_s.p50{label}"] <= got[f"latency_s.max{label}"]
    assert reg.run_metrics(run.id, name="proc_rss_bytes", kind="system")

    # the secret is nowhere: not in the database file, the run's JSON or the dashboard
    assert "--admin-token" in run.config["argv"] and "***" in run.config["argv"]
    assert "--api-key=***" in run.config["argv"]
    assert SECRET.encode() not in b"".join(p.read_bytes() for p in home.glob("llmos.db*"))
    shown = subprocess.run([LLMOS, "runs", "show", run.id, "--json"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and run.id in shown.stdout and SECRET not in shown.stdout + shown.stderr
    with h.UI(home) as ui:
        for path in (f"/runs/{run.id}", f"/api/runs/{run.id}", "/api/runs", "/runs"):
            status, body = ui.get(path)
            assert status == 200 and run.id in body and SECRET not in body, path
