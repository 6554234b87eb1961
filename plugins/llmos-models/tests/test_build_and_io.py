"""Presets, seeds, the build step, and safetensors save/load round trips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from llmos.context import RunContext
from llmos.errors import NotFoundError, ValidationError
from llmos.testing import check_plugin_contract
from llmos_models.build import build_model, count_parameters
from llmos_models.config import GPT2Config, LlamaConfig
from llmos_models.io import load_model, read_meta, save_model


def test_plugin_contract():
    import llmos_models.plugin

    check_plugin_contract(llmos_models.plugin, "llmos-models")


def test_hook_module_is_light():
    code = (
        "import sys, llmos_models.plugin;"
        "bad=[m for m in ('torch','numpy','transformers') if m in sys.modules];print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_preset_parameter_counts(arch):
    from transformers import AutoModelForCausalLM

    from llmos_models.build import hf_config

    target = {"tiny": 1e6, "small": 10e6, "base": 30e6}
    cls = LlamaConfig if arch == "llama" else GPT2Config
    for preset, want in target.items():
        with torch.device("meta"):  # shapes only: counts without allocating 30M weights
            m = AutoModelForCausalLM.from_config(hf_config(arch, cls(preset=preset), vocab_size=4096, max_positions=512))
        n = count_parameters(m)
        assert 0.8 * want <= n <= 1.25 * want, (preset, n)
    real = count_parameters(build_model(arch, cls(preset="tiny"), vocab_size=4096, max_positions=512))
    assert 0.85e6 <= real <= 1.2e6


def test_overrides_and_config_errors():
    m = build_model("llama", LlamaConfig(preset="tiny", hidden_size=64, num_layers=1, num_heads=2,
                                         intermediate_size=96), vocab_size=300, max_positions=64)
    c = m.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (64, 1, 2, 96)
    assert c.vocab_size == 300 and c.max_position_embeddings == 64 and m.dtype == torch.float32
    assert all(isinstance(mod, torch.nn.Linear) for n, mod in m.named_modules() if n.endswith(("q_proj", "down_proj")))
    with pytest.raises(Exception, match="not divisible"):
        LlamaConfig(hidden_size=100, num_heads=3)
    from llmos.components import Component

    comp = Component("model", "gpt2", "llmos_models.build:GPT2Step", config=GPT2Config, plugin="llmos-models")
    with pytest.raises(ValidationError, match=r"model\.gpt2\.preset"):
        comp.validate_config({"preset": "huge"})


def test_same_seed_same_weights(make_model):
    a = make_model("gpt2", 300, seed=3)
    b = make_model("gpt2", 300, seed=3)
    c = make_model("gpt2", 300, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    before = torch.random.get_rng_state()
    make_model("llama", 300, seed=9)
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is untouched


def test_build_step_sizes_model_from_dataset(dataset, tmp_path):
    from llmos_models.build import GPT2Step, LlamaStep

    ctx = RunContext(run_id=None, spec=None, workdir=tmp_path, seed=5)
    ctx.artifacts["dataset"] = dataset
    out = LlamaStep(LlamaConfig(preset="tiny")).run(ctx)
    m = ctx.artifacts["model"]
    assert m.config.vocab_size == dataset.vocab_size and out["params"] == count_parameters(m)
    assert m.config.max_position_embeddings == 512 and m.config.eos_token_id == dataset.special_tokens["eos"]
    GPT2Step(GPT2Config(preset="tiny", max_position_embeddings=64)).run(ctx)
    assert ctx.artifacts["model"].config.n_positions == 64
    with pytest.raises(ValidationError, match="smaller than the dataset's block_size"):
        GPT2Step(GPT2Config(max_position_embeddings=16)).run(ctx)
    with pytest.raises(ValidationError, match="data stage"):
        LlamaStep(LlamaConfig()).run(RunContext(run_id=None, spec=None, workdir=tmp_path))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_save_load_round_trip_is_bit_identical(make_model, arch, dataset, tokenizer, tmp_path):
    model = make_model(arch, dataset.vocab_size, seed=2).eval()
    path = save_model(model, tokenizer, tmp_path / "m", generation={"temperature": 0.7})
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "llmos.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    meta = read_meta(path)
    assert meta["format"] == 1 and meta["params"] == count_parameters(model)
    assert meta["generation"] == {"temperature": 0.7} and "loader" not in meta
    loaded, tok = load_model(path)
    ids = torch.from_numpy(dataset.split("validation")[:2].astype("int64"))
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    assert tok.encode("Return the list") == tokenizer.encode("Return the list")
    assert tok.eos_token_id == tokenizer.eos_token_id
    # saving again replaces the directory atomically
    save_model(loaded, tok, path)
    assert (path / "model.safetensors").is_file() and not list(tmp_path.glob(".m*"))


def test_pickles_are_refused(model_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ValidationError, match="pickled weights .*pytorch_model.bin.*safetensors"):
        load_model(bad)
    with pytest.raises(NotFoundError, match="does not exist"):
        load_model(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="no .safetensors"):
        load_model(empty)


SAVER = '''
import json
from pathlib import Path
from safetensors.torch import load_file, save_file

def save(model, path):
    sd = {k: (v * 2).contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, str(Path(path) / "doubled.safetensors"))
    model.config.save_pretrained(str(path))

def load(path):
    from transformers import AutoConfig, AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(path)))
    sd = {k: v / 2 for k, v in load_file(str(Path(path) / "doubled.safetensors")).items()}
    model.load_state_dict(sd, strict=False)
    model.tie_weights()
    model.llmos_loaded_by = "custom"
    return model
'''


def test_hook_register_model_loaders_custom_saver_round_trips(make_model, dataset, tokenizer, tmp_path,
                                                              monkeypatch, plugin_manager):
    """A plugin's saver writes the model; llmos.json records its loader's registered
    *name* (llmos_register_model_loaders), and load_model finds it through the manager."""
    from llmos import hookimpl

    (tmp_path / "my_saver.py").write_text(SAVER)
    monkeypatch.syspath_prepend(str(tmp_path))

    class MySaver:
        LLMOS_API = 2

        @hookimpl
        def llmos_register_model_loaders(self, register):
            register("doubled", "my_saver:load", description="weights stored doubled")

    plugin_manager.register(MySaver(), name="my-saver")
    model = make_model("llama", dataset.vocab_size, seed=4).eval()
    model.llmos_saver = "my_saver:save"
    with pytest.raises(ValidationError, match="needs llmos_loader = the name of a registered model loader"):
        save_model(model, tokenizer, tmp_path / "custom")
    model.llmos_loader = "nope"
    with pytest.raises(ValidationError, match=r"'nope'.*installed loaders: doubled"):
        save_model(model, tokenizer, tmp_path / "custom")
    assert not (tmp_path / "custom").exists()
    model.llmos_loader = "doubled"
    path = save_model(model, tokenizer, tmp_path / "custom")
    assert read_meta(path)["loader"] == "doubled"
    assert not (path / "model.safetensors").exists() and (path / "doubled.safetensors").exists()
    loaded, _ = load_model(path)
    assert loaded.llmos_loaded_by == "custom"
    ids = torch.from_numpy(dataset.split("validation")[:1].astype("int64"))
    with torch.inference_mode():
        torch.testing.assert_close(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    plugin_manager.unregister("my-saver")  # the plugin is gone: a one-line error naming what is installed
    with pytest.raises(ValidationError, match=r"'doubled', which is not a model loader .*installed loaders: none"):
        load_model(path)