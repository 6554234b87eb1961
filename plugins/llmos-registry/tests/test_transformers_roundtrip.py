"""A real (tiny) transformers model: registered, fine-tuned in one tensor, exported,
and loaded back by transformers with identical outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.slow
def test_hf_model_register_export_load(sqlite_reg: Any, tmp_path: Path) -> None:
    import torch
    import transformers
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=32)
    model = transformers.GPT2LMHeadModel(config).eval()
    model.save_pretrained(tmp_path / "v1")
    v1 = sqlite_reg.register_version("gpt", tmp_path / "v1", metrics={"val_ppl": 64.0})

    with torch.no_grad():  # "fine-tune" one layer
        model.transformer.h[1].mlp.c_fc.weight.add_(0.01)
    model.save_pretrained(tmp_path / "v2")
    v2 = sqlite_reg.register_version("gpt", tmp_path / "v2", parents=[v1.ref], aliases=["production"])
    changed = sqlite_reg.diff(v1.ref, v2.ref)["tensors"]["changed"]
    assert [c["name"] for c in changed] == ["transformer.h.1.mlp.c_fc.weight"]
    assert v2.stored_bytes < v2.size_bytes * 0.3  # only that tensor (and the header) stored again

    sqlite_reg.export("gpt@production", tmp_path / "out")
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
