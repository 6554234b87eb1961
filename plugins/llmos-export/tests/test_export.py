"""Export: ONNX through the registry CLI and as a pipeline stage (registered, reloaded
in a fresh process, generating the same tokens as PyTorch), ONNX Runtime int8,
portable safetensors, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llmos.context import RunContext
from llmos.errors import ValidationError
from llmos.testing import check_plugin_contract


def test_plugin_contract(standard_plugins) -> None:
    import llmos_export.plugin

    check_plugin_contract(llmos_export.plugin, "llmos-export")
    manager = standard_plugins("llmos-export")
    assert sorted(c.ref for c in manager.components()) == ["deployment.export", "deployment.onnx", "deployment.safetensors"]


@pytest.mark.slow
def test_export_onnx_from_the_registry_cli(standard_plugins, registry, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from llmos.cli import main
    from llmos_export.runtime import OnnxCausalLM
    from llmos_models.io import load_model

    standard_plugins("llmos-models", "llmos-export")
    dest = tmp_path / "onnx"
    r = CliRunner().invoke(main, ["model", "export", "tiny:1", str(dest), "--format", "onnx", "--set", "quantize=true"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in dest.iterdir())
    assert {"model.onnx", "model.int8.onnx", "onnx.json", "config.json", "tokenizer.json", "llmos.json"} <= set(names)
    report = json.loads((dest / "onnx.json").read_text())
    assert report["check"]["fp32"]["max_abs_diff"] <= report["check"]["fp32"]["tolerance"] == 1e-3
    assert report["check"]["fp32"]["top1_agreement"] == 1.0
    assert report["check"]["int8"]["top1_agreement"] > 0.5
    assert report["kv"] == {"layers": 2, "kv_heads": 2, "head_dim": 16}
    # format 3: the cache read in place, one input per layer, only the new keys out
    assert report["format"] == 3 and "past_key_<i>" in report["inputs"] and "new_keys" in report["outputs"]
    # fused for ONNX Runtime (RMS normalisation and rotary embeddings as single operators), still checked
    assert report["fused"].get("rms_normalization", 0) > 0 and report["fused"].get("rotary_embedding", 0) > 0

    # the logits match PyTorch on a new input, for the prompt and for cached steps
    ref_model, tok = load_model(registry.checkout("tiny:1"))
    onnx_model, onnx_tok = load_model(dest)  # llmos.json names the ONNX loader
    assert isinstance(onnx_model, OnnxCausalLM) and onnx_tok is not None
    x = torch.randint(0, ref_model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = ref_model(input_ids=x).logits
    assert torch.allclose(onnx_model(input_ids=x).logits, ref, atol=1e-4)
    greedy = ref_model.generate(input_ids=x[:1], attention_mask=torch.ones_like(x[:1]), max_new_tokens=12,
                                do_sample=False, eos_token_id=None, pad_token_id=0)
    assert onnx_model.generate(x[:1], max_new_tokens=12).tolist() == greedy.tolist()
    int8 = OnnxCausalLM(dest, variant="int8")
    assert int8.generate(x[:1], max_new_tokens=4).shape == (1, 15)

    # the check can fail: the graph does not match a different model
    from llmos_export.onnx_export import check_against_pytorch

    other = ref_model
    with torch.no_grad():
        other.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    assert check_against_pytorch(other, dest / "model.onnx", 8)["max_abs_diff"] > 1e-3

    # bad input: one clear line each, nothing written
    for args, msg in [(["--set", "opset=5"], "opset"), (["--set", "bogus=1"], "bogus"),
                      (["--format", "tflite"], "no exporter for format 'tflite'")]:
        bad = tmp_path / "bad"
        r = CliRunner().invoke(main, ["model", "export", "tiny:1", str(bad), "--format", "onnx", *args])
        assert r.exit_code != 0 and msg in r.output and "Traceback" not in r.output, r.output
        assert not bad.exists() or not any(bad.iterdir())


@pytest.mark.slow
def test_onnx_stage_registers_a_derived_version_that_reloads_in_a_fresh_process(registry, llmos_home: Path,
                                                                              tmp_path: Path) -> None:
    from llmos_export.config import OnnxConfig
    from llmos_export.onnx_export import OnnxExporter
    from llmos_models.io import load_model

    model, tok = load_model(registry.checkout("tiny:1"))
    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path)
    ctx.artifacts.update(model=model, tokenizer=tok, model_version="tiny:1")
    ctx._version_registrar = lambda path, model=None, **kw: registry.register_version(
        model, path, parents=[ctx.artifacts["model_version"]], **kw)
    metrics = OnnxExporter(OnnxConfig(model="tiny-onnx", check_tokens=8)).run(ctx)
    assert metrics["onnx_max_abs_diff"] <= 1e-3
    assert ctx.artifacts["model"] is model and ctx.artifacts["onnx_version"] == "tiny-onnx:1"
    v = registry.resolve("tiny-onnx:1")
    assert v.parents == ["tiny:1"] and v.lineage["method"] == "export:onnx" and v.tags == {"format": "onnx"}
    assert {f["path"] for f in v.files} >= {"model.onnx", "onnx.json", "tokenizer.json"}

    x = torch.arange(3, 13).reshape(1, 10)
    with torch.no_grad():
        expected = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=6, do_sample=False,
                                  eos_token_id=None, pad_token_id=0).tolist()
    code = """
import json, torch
from llmos_models.io import load_ref
model, tok, ref = load_ref("tiny-onnx:1")
out = model.generate(torch.arange(3, 13).reshape(1, 10), max_new_tokens=6)
print(json.dumps({"ref": ref, "type": type(model).__name__, "ids": out.tolist(), "text": tok.decode(out[0])}))
"""
    env = {**os.environ, "LLMOS_HOME": str(llmos_home), "LLMOS_PLUGINS": "llmos-models,llmos-export,llmos-registry"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["ref"] == "tiny-onnx:1" and got["type"] == "OnnxCausalLM"
    assert got["ids"] == expected and isinstance(got["text"], str)


def test_int8_model_dequantizes_for_portable_safetensors(registry, tmp_path: Path) -> None:
    pytest.importorskip("llmos_compress")
    from transformers import AutoModelForCausalLM

    from llmos_compress.int8 import quantize_int8
    from llmos_export.onnx_export import dequantize
    from llmos_export.safetensors_export import SafetensorsExporter, export_safetensors
    from llmos_models.io import load_model

    model, tok = load_model(registry.checkout("tiny:1"))
    q = quantize_int8(model)
    x = torch.randint(0, model.config.vocab_size, (1, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        qlogits = q(input_ids=x).logits
    files = export_safetensors(q, tok, tmp_path / "hf")
    assert any(f.name == "model.safetensors" for f in files)
    plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "hf"))  # no llmos loader needed
    with torch.no_grad():
        # dynamic int8 also quantizes activations, so the fp32 copy is close, not equal
        assert (plain(input_ids=x).logits - qlogits).abs().max() < 0.05
        assert torch.allclose(plain(input_ids=x).logits, dequantize(q)(input_ids=x).logits, atol=1e-5)
    out = SafetensorsExporter().export(registry.checkout("tiny:1"), tmp_path / "hf2")
    assert (tmp_path / "hf2" / "model.safetensors") in out
    with pytest.raises(ValidationError, match="needs a model"):
        SafetensorsExporter().run(RunContext(run_id=None, spec=None, workdir=tmp_path))
    assert np.isfinite(qlogits.numpy()).all()


def test_exported_tokenizer_carries_the_chat_template(standard_plugins, registry, tmp_path: Path) -> None:
    """tiny:1 was saved by save_model from a tokenizer without a chat template: the version
    carries the default one in tokenizer_config.json, so apply_chat_template works on its
    exports (hf as registered, onnx through the exporter)."""
    from click.testing import CliRunner
    from transformers import AutoTokenizer

    from llmos.cli import main
    from llmos_models.chat import DEFAULT_CHAT_TEMPLATE

    standard_plugins("llmos-models", "llmos-export")
    dest = tmp_path / "hf"
    r = CliRunner().invoke(main, ["model", "export", "tiny:1", str(dest), "--format", "hf"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert json.loads((dest / "tokenizer_config.json").read_text())["chat_template"] == DEFAULT_CHAT_TEMPLATE
    tok = AutoTokenizer.from_pretrained(dest)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>\nhi\n<|assistant|>\n"
    # a tokenizer without one gets the default when an exporter writes it
    from llmos_export.safetensors_export import export_safetensors
    from transformers import AutoModelForCausalLM

    bare = AutoTokenizer.from_pretrained(dest)
    bare.chat_template = None
    out = tmp_path / "st"
    export_safetensors(AutoModelForCausalLM.from_pretrained(dest), bare, out)
    assert AutoTokenizer.from_pretrained(out).chat_template == DEFAULT_CHAT_TEMPLATE


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_int8_version_exported_hf_or_safetensors_loads_in_transformers(standard_plugins, registry, tmp_path: Path,
                                                                        arch: str) -> None:
    """Regression: ``llmos model export`` of an int8 version used to copy its int8 files,
    which transformers loaded with random weights (a MISSING/UNEXPECTED report, no error)."""
    from click.testing import CliRunner
    from transformers import AutoModelForCausalLM, GPT2Config

    from llmos.cli import main
    from llmos_compress.int8 import quantize_int8
    from llmos_models.io import load_model, save_model

    standard_plugins("llmos-models", "llmos-export", "llmos-compress")
    model, tok = load_model(registry.checkout("tiny:1"))
    if arch == "gpt2":  # Conv1D projections, which int8 turns into Linear layers
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4,
                                                            n_positions=64, bos_token_id=1, eos_token_id=2))
    save_model(quantize_int8(model), tok, tmp_path / "int8")
    registry.register_version("tiny-int8", tmp_path / "int8")
    int8, _ = load_model(registry.checkout("tiny-int8:1"))  # what llmos serves and generates with
    x = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = int8(input_ids=x).logits
    for fmt in ("hf", "safetensors"):
        dest = tmp_path / f"out-{fmt}"
        r = CliRunner().invoke(main, ["model", "export", "tiny-int8:1", str(dest), "--format", fmt],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert not (dest / "quantization.json").exists()
        plain, info = AutoModelForCausalLM.from_pretrained(str(dest), output_loading_info=True)
        assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        with torch.no_grad():
            got = plain(input_ids=x).logits
        # the export holds the int8-rounded weights in fp32; dynamic int8 also rounds the
        # activations, so the logits agree to 0.05 (scale ~1), and the greedy tokens mostly
        assert (got - expected).abs().max() < 0.05, (got - expected).abs().max()
        assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mistral", "gpt_neox"])
def test_format3_graph_decodes_like_transformers_across_architectures(arch: str, tmp_path: Path) -> None:
    """Format 3 for attention other than Llama's: grouped queries with a sliding window
    shorter than the text (Mistral), and partial rotary with fused QKV (GPT-NeoX). Greedy
    decoding through KVCache (prompt, then one column per step, growing past the first
    chunk) gives transformers' tokens; a padded batch of rows of different lengths gives
    each row's own logits."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, MistralConfig, MistralForCausalLM

    from llmos_export.onnx_export import export_onnx
    from llmos_export.runtime import KVCache, OnnxCausalLM

    common = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=256)
    torch.manual_seed(0)
    if arch == "mistral":
        model = MistralForCausalLM(MistralConfig(**common, num_key_value_heads=2, sliding_window=8)).eval()
    else:
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**common, rotary_pct=0.5)).eval()
    _, report = export_onnx(model, None, tmp_path / "onnx")
    assert report["format"] == 3
    onnx = OnnxCausalLM(tmp_path / "onnx")
    x = torch.randint(0, 128, (1, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=70, min_new_tokens=70,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
    assert onnx.generate(x, max_new_tokens=70).tolist() == ref.tolist()

    # rows of 3, 10 and 7 tokens prefilled together (right-padded), then two steps each
    rows = [x[0, :3], x[0], x[0, 3:]]
    cache = KVCache(onnx.kv_shape)
    ids = np.zeros((3, 10), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r.numpy()
    logits = cache.prefill(onnx, ids, [len(r) for r in rows])
    got = [[logits[i, len(r) - 1]] for i, r in enumerate(rows)]
    nxt = [int(g[0].argmax()) for g in got]
    for _ in range(2):
        step = cache.step(onnx, np.asarray(nxt))
        for i in range(3):
            got[i].append(step[i])
        nxt = [int(s.argmax()) for s in step]
    for i, r in enumerate(rows):
        seq = torch.cat([r, torch.tensor([int(g.argmax()) for g in got[i][:-1]])])[None]
        with torch.no_grad():
            want = model(input_ids=seq).logits[0, len(r) - 1:].numpy()
        assert np.abs(np.stack(got[i]) - want).max() < 1e-4, (arch, i)
