"""Tiny real models and data for the llmos-train tests (seconds on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch


class BlockDataset:
    """What a data stage provides (``ctx.artifacts["dataset"]``): ``split(name)`` →
    ``(n_blocks, block_size)`` token arrays, memory-mapped from real files."""

    def __init__(self, directory: Path, train: np.ndarray, validation: np.ndarray, vocab_size: int) -> None:
        self._splits = {}
        for name, arr in (("train", train), ("validation", validation)):
            path = directory / f"{name}.u16"
            mm = np.memmap(path, dtype=np.uint16, mode="w+", shape=arr.shape)
            mm[:] = arr
            mm.flush()
            self._splits[name] = np.memmap(path, dtype=np.uint16, mode="r", shape=arr.shape)
        self.vocab_size, self.block_size = vocab_size, train.shape[1]
        self.corpus_sha256 = "0" * 64
        self.stats: dict[str, Any] = {}

    def split(self, name: str) -> np.ndarray:
        return self._splits[name]


def make_blocks(n: int, block: int, vocab: int, seed: int) -> np.ndarray:
    """Sequences with structure a tiny model can learn: runs of an arithmetic progression."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, vocab, size=(n, 1))
    stride = rng.integers(1, 4, size=(n, 1))
    return ((start + stride * np.arange(block)) % vocab).astype(np.uint16)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def dataset(tmp_path: Path) -> BlockDataset:
    return BlockDataset(tmp_path, make_blocks(96, 17, 48, 0), make_blocks(16, 17, 48, 1), 48)


def tiny_llama(seed: int = 0) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


@pytest.fixture
def model_factory():
    return tiny_llama


@pytest.fixture
def make_ctx(tmp_path: Path):
    """``make_ctx(model, dataset, workdir=None, resume=False)`` → a RunContext whose metrics land in ``ctx.logged``."""
    from llmos.context import RunContext

    def make(model: Any, ds: Any, workdir: Path | None = None, resume: bool = False, seed: int = 7) -> Any:
        ctx = RunContext(run_id=None, spec=None, workdir=workdir or tmp_path / "run", seed=seed, resume=resume)
        ctx.artifacts.update(model=model, dataset=ds)
        ctx.logged = []
        ctx._metric_writer = lambda kind, step, m: ctx.logged.append((kind, step, dict(m)))
        return ctx

    return make
