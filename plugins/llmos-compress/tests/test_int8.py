"""int8 dynamic quantization: same logits after the safetensors round trip, refusal
of quantized input, size, and the pipeline step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmos.context import RunContext
from llmos.errors import ValidationError


def _logits(model, seed: int = 0):
    x = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(input_ids=x).logits


def test_round_trip_gives_identical_logits(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llmos_compress.int8 import quantize_int8, quantized_modules
    from llmos_compress.measure import dir_bytes
    from llmos_models.io import load_model, read_meta, save_model

    model, tok = load_model(tiny_model_dir)
    q = quantize_int8(model)
    assert quantized_modules(model) == []  # the original is left fp32
    out = save_model(q, tok, tmp_path / "q")
    assert read_meta(out)["loader"] == "int8"
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors"]
    info = json.loads((out / "quantization.json").read_text())
    assert len(info["modules"]) == len(quantized_modules(q)) == 2 * 7 + 1  # q,k,v,o,gate,up,down per layer + lm_head
    back, _ = load_model(out)
    assert torch.equal(_logits(back), _logits(q))
    # close to fp32, but not identical (it is quantized)
    diff = (_logits(back) - _logits(model)).abs().max().item()
    assert 0 < diff < 0.5
    assert dir_bytes(out) < 0.7 * dir_bytes(tiny_model_dir)


def test_per_tensor_and_excluded_layers_round_trip(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llmos_compress.int8 import quantize_int8, quantized_modules
    from llmos_models.io import load_model, save_model

    model, tok = load_model(tiny_model_dir)
    q = quantize_int8(model, per_channel=False, include_lm_head=False, exclude=["model.layers.0"])
    names = quantized_modules(q)
    assert "lm_head" not in names and not any(n.startswith("model.layers.0.") for n in names) and len(names) == 7
    back, _ = load_model(save_model(q, tok, tmp_path / "q"))
    assert torch.equal(_logits(back), _logits(q))


def test_refuses_an_already_quantized_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llmos_compress.int8 import quantize_int8
    from llmos_models.io import load_model, save_model

    model, tok = load_model(tiny_model_dir)
    q = quantize_int8(model)
    with pytest.raises(ValidationError, match="already int8-quantized"):
        quantize_int8(q)
    back, _ = load_model(save_model(q, tok, tmp_path / "q"))  # also after a reload
    with pytest.raises(ValidationError, match="already int8-quantized"):
        quantize_int8(back)


def test_step_sets_model_and_lineage(tiny_model_dir: Path, tmp_path: Path) -> None:
    from llmos_compress.config import Int8Config
    from llmos_compress.int8 import Int8Step, is_quantized
    from llmos_models.io import load_model

    model, _ = load_model(tiny_model_dir)
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path)
    ctx.artifacts["model"] = model
    metrics = Int8Step(Int8Config(per_channel=True)).run(ctx)
    assert is_quantized(ctx.artifacts["model"]) and not is_quantized(model)
    assert ctx.artifacts["lineage"] == {  # compression.int8 is compression.quantize with method = "int8"
        "method": "int8_dynamic", "settings": {"per_channel": True, "include_lm_head": True, "exclude": []},
        "component": "llmos-compress:quantizers.int8"}
    assert metrics["quantized_layers"] == 15
    assert ctx.artifacts["metrics"] == metrics  # the parent's evaluation is not carried over
    with pytest.raises(ValidationError, match="needs a model"):
        Int8Step().run(RunContext(run_id=None, spec=None, workdir=tmp_path))


def test_gpt2_projections_are_quantized_too(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmos_compress.int8 import quantize_int8, quantized_modules
    from llmos_models.io import load_model, save_model

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32)).eval()
    q = quantize_int8(gpt2)
    assert len(quantized_modules(q)) == 2 * 4 + 1  # c_attn, c_proj, c_fc, mlp.c_proj per layer + lm_head
    x = torch.randint(0, 64, (1, 10))
    with torch.no_grad():
        assert (q(input_ids=x).logits - gpt2(input_ids=x).logits).abs().max() < 0.1
        back, _ = load_model(save_model(q, None, tmp_path / "g"))
        assert torch.equal(back(input_ids=x).logits, q(input_ids=x).logits)
