"""Shared fixtures: one tiny real dataset (built by llmos-data) and tiny models."""

from __future__ import annotations

import json

import pytest
import torch

torch.set_num_threads(1)

SENTENCES = [
    "Return the number of items in the list.",
    "The default value is used when no argument is given.",
    "This module provides functions to read and write files.",
    "Raise an error if the file does not exist.",
    "Return a new list with the items sorted.",
    "The socket is closed when the object is deleted.",
]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    from llmos_data.config import CorpusConfig
    from llmos_data.corpus import build_dataset

    root = tmp_path_factory.mktemp("data")
    src = root / "docs.jsonl"
    lines = []
    for i in range(120):
        a, b = SENTENCES[i % 6], SENTENCES[(i * 5 + 1) % 6]
        lines.append(json.dumps({"text": f"{a} {b} Item {i} of the example."}))
    src.write_text("\n".join(lines))
    cfg = CorpusConfig(paths=[str(src)], vocab_size=320, block_size=32, validation_fraction=0.15, near_dedup=False)
    return build_dataset(cfg, cache_root=root / "cache", workdir=root / "work")


@pytest.fixture(scope="session")
def tokenizer(dataset):
    return dataset.tokenizer()


def small_model(arch: str, vocab: int, seed: int = 0, **over):
    from llmos_models.build import build_model
    from llmos_models.config import GPT2Config, LlamaConfig

    over.setdefault("hidden_size", 32)
    over.setdefault("num_layers", 2)
    over.setdefault("num_heads", 2)
    over.setdefault("intermediate_size", 64)
    cfg = (LlamaConfig if arch == "llama" else GPT2Config)(**over)
    return build_model(arch, cfg, vocab_size=vocab, max_positions=128, seed=seed)


@pytest.fixture(scope="session")
def make_model():
    """``make_model(arch, vocab, seed=0, **overrides)`` → a very small fresh model."""
    return small_model


@pytest.fixture(scope="session")
def trained(dataset, tokenizer):
    """A tiny Llama trained for a few steps on the dataset (so generations are not noise)."""
    import numpy as np

    model = small_model("llama", dataset.vocab_size, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train = dataset.split("train")
    g = np.random.default_rng(0)
    model.train()
    for _ in range(60):
        idx = np.sort(g.choice(len(train), size=8, replace=False))
        batch = torch.from_numpy(np.asarray(train[idx], dtype=np.int64))
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model


@pytest.fixture(scope="session")
def model_dir(trained, tokenizer, tmp_path_factory):
    from llmos_models.io import save_model

    return save_model(trained, tokenizer, tmp_path_factory.mktemp("models") / "tiny")
