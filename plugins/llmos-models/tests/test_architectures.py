"""Architectures and presets are extension points (llmos_register_architectures):
llmos-models registers llama and gpt2 through the hook, model.build looks any registered
one up by name, and an unknown name is a located --check error listing what exists."""

from __future__ import annotations

from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from llmos import hookimpl


class NarrowConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 16
    depth: int = 1


def narrow_llama(cfg, *, vocab_size, max_positions, special=None):
    """A real third-party architecture: a 1-head Llama of the given width."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.width, intermediate_size=2 * cfg.width,
                       num_hidden_layers=cfg.depth, num_attention_heads=1, num_key_value_heads=1,
                       max_position_embeddings=max_positions)


class Narrow:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_architectures(self, register):
        register("narrow", narrow_llama, config=NarrowConfig, presets={"mini": {"width": 8}, "midi": {"width": 24}},
                 description="One-head Llama of a chosen width")


PIPE = """
[pipeline]
name = "arch"

[[stages]]
use = "model.build"
[stages.config]
architecture = "{arch}"
preset = "{preset}"
vocab_size = 64
settings = {settings}
"""


def test_hook_register_architectures_built_by_model_build(standard_plugins, tmp_path):
    from llmos.sdk import MODEL, RunContext

    manager = standard_plugins("llmos-models")
    assert {e.name for e in manager.extensions("architectures")} == {"llama", "gpt2"}  # the built-ins, by the hook
    manager.register(Narrow(), name="narrow-plugin")
    step = manager.get_component("model.build").create({"architecture": "narrow", "preset": "midi",
                                                        "settings": {"depth": 2}, "vocab_size": 64})
    ctx = RunContext.standalone(tmp_path, seed=3)
    step.run(ctx)
    model = MODEL.get(ctx)
    assert model.config.hidden_size == 24 and model.config.num_hidden_layers == 2 and model.config.vocab_size == 64
    # the built-in llama through the same lookup equals model.llama's model
    step = manager.get_component("model.build").create({"architecture": "llama", "vocab_size": 64,
                                                        "settings": {"hidden_size": 32, "num_heads": 2}})
    step.run(ctx)
    assert MODEL.get(ctx).config.hidden_size == 32 and type(MODEL.get(ctx)).__name__ == "LlamaForCausalLM"


def test_unknown_architecture_or_preset_is_a_located_check_error(standard_plugins, tmp_path):
    from llmos.cli import main

    manager = standard_plugins("llmos-models")
    manager.register(Narrow(), name="narrow-plugin")
    f = tmp_path / "p.toml"
    runner = CliRunner()
    f.write_text(PIPE.format(arch="narrow", preset="mini", settings="{}"))
    assert runner.invoke(main, ["run", str(f), "--check"]).exit_code == 0
    f.write_text(PIPE.format(arch="mamba", preset="mini", settings="{}"))
    r = runner.invoke(main, ["run", str(f), "--check"])
    assert r.exit_code != 0
    assert "stages[0].config" in r.output and "no architecture named 'mamba'" in r.output
    assert "available architectures: gpt2, llama, narrow" in r.output
    f.write_text(PIPE.format(arch="narrow", preset="huge", settings="{}"))
    r = runner.invoke(main, ["run", str(f), "--check"])
    assert r.exit_code != 0 and "architecture 'narrow' has no preset 'huge' (presets: mini, midi)" in r.output
    f.write_text(PIPE.format(arch="narrow", preset="mini", settings="{ heads = 3 }"))
    r = runner.invoke(main, ["run", str(f), "--check"])
    assert r.exit_code != 0 and "settings.heads" in r.output


def test_model_llama_builds_through_the_registered_architecture(standard_plugins, tmp_path):
    """model.llama (the older name) looks llama up like model.build does: a second plugin
    registering "llama" makes it a located conflict, not a silent built-in."""
    import pytest

    from llmos.sdk import MODEL, ConflictError, RunContext

    class OtherLlama:
        LLMOS_API = 2

        @hookimpl
        def llmos_register_architectures(self, register):
            register("llama", narrow_llama, config=NarrowConfig, description="another llama")

    manager = standard_plugins("llmos-models")
    step = manager.get_component("model.llama").create({"vocab_size": 64, "hidden_size": 32, "num_heads": 2,
                                                        "num_layers": 1})
    ctx = RunContext.standalone(tmp_path)
    step.run(ctx)
    assert type(MODEL.get(ctx)).__name__ == "LlamaForCausalLM" and MODEL.get(ctx).config.hidden_size == 32
    manager.register(OtherLlama(), name="other-llama")
    with pytest.raises(ConflictError, match="llmos-models.*other-llama|other-llama.*llmos-models"):
        step.run(ctx)
