"""Fixtures: tiny real Llama models (BPE trained here, weights from config) and real
servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TEXT = (
    "the quick brown fox jumps over the lazy dog. "
    "hello world, a tiny model speaks in short sentences. "
    "numbers one two three four five six seven eight nine ten. "
    "once upon a time there was a little server that answered every request. "
) * 30


def build_tiny_model(path: Path, seed: int = 0, *, context: int = 512, text: str = TEXT) -> Path:
    """A ~60k-parameter Llama with a 300-token byte-level BPE (trained on ``text``), saved in HF layout."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([text], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    eos = fast.eos_token_id
    cfg = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=context, bos_token_id=eos, eos_token_id=eos,
        pad_token_id=eos,
    )
    model = LlamaForCausalLM(cfg).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny models with different weights (two 'versions')."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return [build_tiny_model(root / f"tiny{i}", seed=i) for i in range(2)]


@pytest.fixture
def tiny_dir(tiny_models: list[Path], tmp_path: Path) -> Path:
    """A model directory named 'tiny' (the served model's name is the directory's)."""
    import shutil

    dst = tmp_path / "tiny"
    shutil.copytree(tiny_models[0], dst)
    return dst


@pytest.fixture
def start_server(plugin_manager: Any) -> Iterator[Callable[..., Any]]:
    """Factory: ``start_server(model=..., **ServeConfig fields)`` → a started
    BackgroundServer on a free port (stopped after the test)."""
    from llmos_serve.config import ServeConfig
    from llmos_serve.server import BackgroundServer

    started: list[Any] = []

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("access_log", False)
        srv = BackgroundServer(ServeConfig(**kwargs)).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_openai_error(r: httpx.Response, status: int) -> dict[str, Any]:
    """Assert ``r`` is an error in OpenAI's shape with ``status``; its ``error`` object."""
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return err


@pytest.fixture(name="_is_openai_error")
def openai_error() -> Callable[[httpx.Response, int], dict[str, Any]]:
    """:func:`check_openai_error`, as a fixture."""
    return check_openai_error


class ServeProcess:
    """``llmos serve ARGS`` as a real process on ``127.0.0.1:port``."""

    def __init__(self, args: list[str], home: Path, port: int, **env: str) -> None:
        import os
        import subprocess
        import sys

        self.url = f"http://127.0.0.1:{port}"
        full = dict(os.environ, LLMOS_HOME=str(home), PYTHONUNBUFFERED="1", LLMOS_MONITOR_SYSTEM="0", **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmos", "serve", *args, "--port", str(port)], env=full,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def wait_ready(self, timeout: float = 120) -> ServeProcess:
        import time

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)

    def terminate(self, timeout: float = 120) -> tuple[int, str, str]:
        """SIGTERM, then wait: ``(exit status, stdout, stderr)``."""
        import signal

        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


@pytest.fixture
def serve_process(llmos_home: Path, free_port: int) -> Iterator[Callable[..., ServeProcess]]:
    """Factory: ``serve_process(args, **env)`` → a started ``llmos serve`` process
    (killed after the test if still running)."""
    started: list[ServeProcess] = []

    def start(args: list[str], **env: str) -> ServeProcess:
        p = ServeProcess(args, llmos_home, free_port, **env)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.communicate()


def train_tiny_model(path: Path, steps: int = 120, text: str = TEXT) -> Path:
    """:func:`build_tiny_model`, then ``steps`` of Adam on ``text`` (default :data:`TEXT`; a
    second on CPU): its greedy continuations are sentences of it, with clear margins between tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_model(path, text=text)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = torch.tensor(tok(text if text is not TEXT else TEXT[: len(TEXT) // 3])["input_ids"])
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 65, (8,), generator=g)
        batch = torch.stack([ids[s : s + 64] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny model directory (see :func:`train_tiny_model`)."""
    import torch

    torch.set_num_threads(1)
    return train_tiny_model(tmp_path_factory.mktemp("trained") / "tiny")


def json_records(count: int = 300, seed: int = 0) -> str:
    """JSON lines of small records (words of :data:`TEXT`, numbers, booleans, lists)."""
    import json
    import random

    rng = random.Random(seed)
    words = sorted(set(TEXT.replace(",", " ").replace(".", " ").split()))
    lines = []
    for _ in range(count):
        rec: dict[str, Any] = {"name": rng.choice(words), "age": rng.randint(0, 99),
                               "tags": rng.sample(words, rng.randint(0, 3)), "ok": rng.random() < 0.5}
        if rng.random() < 0.3:
            rec["note"] = " ".join(rng.sample(words, 3))
        lines.append(json.dumps(rec))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def json_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on :func:`json_records` (it writes JSON-like lines, not always valid)."""
    import torch

    torch.set_num_threads(1)
    return train_tiny_model(tmp_path_factory.mktemp("json") / "tiny", steps=200, text=json_records())


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory, trained_tiny: Path) -> tuple[Path, Path]:
    """``(cache root, ONNX export of trained_tiny in it)``: the ort engine's own export
    (``llmos_serve.engines.ensure_export``), made once per test session (~30 s)."""
    import os

    from llmos_serve import engines
    from llmos_serve.loader import load_directory

    root = tmp_path_factory.mktemp("engine-cache")
    before = os.environ.get("LLMOS_ENGINE_CACHE")
    os.environ["LLMOS_ENGINE_CACHE"] = str(root)
    try:
        export = engines.ensure_export(load_directory(trained_tiny, name="tiny", version="local"))
    finally:
        if before is None:
            del os.environ["LLMOS_ENGINE_CACHE"]
        else:
            os.environ["LLMOS_ENGINE_CACHE"] = before
    return root, export
