"""Export formats are extension points (llmos_register_export_formats): llmos-export
registers onnx and safetensors through the hook, deployment.export looks any registered
one up by name, an unknown name is a located --check error listing what exists."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from llmos import hookimpl


class ShapesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    indent: int = 0


def shapes_json(model, tokenizer, out_dir, config):
    """A real (if modest) export format: every tensor's name and shape, as JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f = out / "shapes.json"
    f.write_text(json.dumps({k: list(v.shape) for k, v in model.state_dict().items()}, indent=config.indent or None))
    return [f]


class Shapes:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_export_formats(self, register):
        register("shapes", shapes_json, config=ShapesConfig, description="Tensor shapes as JSON")


def test_hook_register_export_formats_used_by_deployment_export(standard_plugins, tiny_model_dir, tmp_path):
    from llmos.sdk import EXPORT_PATH, RunContext
    from llmos_models.io import load_model

    manager = standard_plugins("llmos-models", "llmos-export")
    assert sorted(e.name for e in manager.extensions("export_formats")) == ["onnx", "safetensors"]
    manager.register(Shapes(), name="shapes-plugin")
    model, tok = load_model(tiny_model_dir)
    ctx = RunContext.standalone(tmp_path / "w", artifacts={"model": model, "tokenizer": tok})
    step = manager.get_component("deployment.export").create({"format": "shapes", "settings": {"indent": 2}})
    assert step.run(ctx)["files"] == 1.0
    shapes = json.loads((Path(EXPORT_PATH.get(ctx)) / "shapes.json").read_text())
    assert shapes["lm_head.weight"] == list(model.lm_head.weight.shape)
    # the built-in safetensors format through the same lookup loads back
    manager.get_component("deployment.export").create({"format": "safetensors"}).run(ctx)
    back, _ = load_model(EXPORT_PATH.get(ctx))
    assert back.config.hidden_size == model.config.hidden_size


def test_unknown_export_format_is_a_located_check_error(standard_plugins, tmp_path):
    from llmos.cli import main

    manager = standard_plugins("llmos-models", "llmos-export")
    manager.register(Shapes(), name="shapes-plugin")
    f = tmp_path / "p.toml"
    f.write_text('[pipeline]\nname = "e"\n\n[[stages]]\nuse = "deployment.export"\n[stages.config]\nformat = "gguf"\n')
    r = CliRunner().invoke(main, ["run", str(f), "--check"])
    assert r.exit_code != 0
    assert "stages[0].config" in r.output
    assert "no export format named 'gguf' (available export_formats: onnx, safetensors, shapes" in r.output
