"""Measurement helpers: data sources, perplexity, parameter counting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmos.errors import NotFoundError, ValidationError


def test_open_data_reads_a_packed_dataset_and_text(tmp_path: Path, tiny_model_dir: Path, corpus_file: Path) -> None:
    pytest.importorskip("llmos_data")
    from llmos_compress.measure import open_data
    from llmos_models.io import load_model

    blocks = {"train": np.arange(8 * 16, dtype=np.uint16).reshape(8, 16),
              "validation": np.arange(2 * 16, dtype=np.uint16).reshape(2, 16)}
    for name, arr in blocks.items():
        arr.tofile(tmp_path / f"{name}.bin")
    (tmp_path / "meta.json").write_text(json.dumps({
        "vocab_size": 512, "block_size": 16, "tokenizer_dir": str(tiny_model_dir), "corpus_sha256": "0" * 64,
        "stats": {}, "dtype": "uint16", "blocks": {"train": 8, "validation": 2}}))
    ds = open_data(tmp_path, None, 64)
    assert ds.split("validation").shape == (2, 16) and int(ds.split("train")[1, 0]) == 16

    _, tok = load_model(tiny_model_dir)
    text = open_data(corpus_file, tok, 32)
    train, val = text.split("train"), text.split("validation")
    assert train.shape[1] == val.shape[1] == 32 and len(val) == max(1, round((len(train) + len(val)) * 0.1))
    with pytest.raises(NotFoundError, match="does not exist"):
        open_data(tmp_path / "nope", tok, 32)
    short = tmp_path / "short.txt"
    short.write_text("x")
    with pytest.raises(ValidationError, match="too few for two blocks"):
        open_data(short, tok, 32)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationError, match="holds no text files"):
        open_data(empty, tok, 32)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(make_tiny) -> None:
    import torch

    from llmos_compress.measure import count_parameters, perplexity

    model = make_tiny(97)
    with torch.no_grad():
        model.lm_head.weight.zero_()  # tied: all logits 0 -> uniform over 97 tokens
    blocks = np.random.default_rng(0).integers(0, 97, (4, 16))
    assert perplexity(model, blocks)["val_ppl"] == pytest.approx(97.0, rel=1e-4)
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
