"""Quantization methods are extension points (llmos_register_quantizers): llmos-compress
registers int8 through the hook, compression.quantize looks any registered one up by
name, an unknown name is a located --check error listing what exists."""

from __future__ import annotations

from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from llmos import hookimpl


class HalfConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_lm_head: bool = True


def to_half(model, config):
    """A real quantizer: weights to float16 (all but the lm_head when asked)."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not (config.keep_lm_head and name == "lm_head"):
            module.half()
    return model


class Half:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_quantizers(self, register):
        register("fp16", to_half, config=HalfConfig, description="Linear layers in float16")


def test_hook_register_quantizers_used_by_compression_quantize(standard_plugins, tiny_model_dir, tmp_path):
    import torch

    from llmos.sdk import LINEAGE, MODEL, RunContext, check_artifacts
    from llmos_models.io import load_model

    manager = standard_plugins("llmos-models", "llmos-compress")
    assert [e.name for e in manager.extensions("quantizers")] == ["int8"]  # the built-in, through the hook
    manager.register(Half(), name="half-plugin")
    model, _ = load_model(tiny_model_dir)
    ctx = RunContext.standalone(tmp_path, artifacts={"model": model})
    manager.get_component("compression.quantize").create({"method": "fp16", "settings": {"keep_lm_head": False}}).run(ctx)
    assert MODEL.get(ctx).lm_head.weight.dtype == torch.float16
    assert LINEAGE.get(ctx)["method"] == "fp16" and LINEAGE.get(ctx)["settings"] == {"keep_lm_head": False}
    model, _ = load_model(tiny_model_dir)
    ctx = RunContext.standalone(tmp_path, artifacts={"model": model})
    manager.get_component("compression.quantize").create({"method": "int8"}).run(ctx)
    assert LINEAGE.get(ctx)["method"] == "int8_dynamic" and check_artifacts(ctx.artifacts) == []


def test_unknown_quantizer_is_a_located_check_error(standard_plugins, tmp_path):
    from llmos.cli import main

    manager = standard_plugins("llmos-models", "llmos-compress")
    manager.register(Half(), name="half-plugin")
    f = tmp_path / "p.toml"
    f.write_text('[pipeline]\nname = "q"\n\n[[stages]]\nuse = "compression.quantize"\n'
                 '[stages.config]\nmethod = "int4"\n')
    r = CliRunner().invoke(main, ["run", str(f), "--check"])
    assert r.exit_code != 0
    assert "stages[0].config" in r.output and "no quantizer named 'int4' (available quantizers: fp16, int8" in r.output


def test_compression_int8_quantizes_through_the_registered_quantizer(standard_plugins, tiny_model_dir, tmp_path):
    """compression.int8 (the older name) is compression.quantize with method = int8: the same
    lookup, so a second plugin registering "int8" is a conflict there too."""
    import pytest

    from llmos.sdk import LINEAGE, RunContext
    from llmos_models.io import load_model

    class OtherInt8:
        LLMOS_API = 2

        @hookimpl
        def llmos_register_quantizers(self, register):
            register("int8", to_half, config=HalfConfig, description="not the int8 of llmos-compress")

    manager = standard_plugins("llmos-models", "llmos-compress")
    model, _ = load_model(tiny_model_dir)
    ctx = RunContext.standalone(tmp_path, artifacts={"model": model})
    metrics = manager.get_component("compression.int8").create({"per_channel": True}).run(ctx)
    assert LINEAGE.get(ctx)["component"] == "llmos-compress:quantizers.int8" and metrics["quantized_layers"] > 0
    manager.register(OtherInt8(), name="other-int8")
    model, _ = load_model(tiny_model_dir)
    with pytest.raises(ValueError, match="llmos-compress.*other-int8|other-int8.*llmos-compress"):
        manager.get_component("compression.int8").create({}).run(RunContext.standalone(tmp_path, artifacts={"model": model}))
