"""Extension points (plugin API 2, group 2 of llmos.hookspecs): a real extra plugin
registered in code provides one of each kind; the manager lists it under its plugin,
finds it by name or ``plugin:name``, refuses duplicates naming both plugins, and an
unknown name lists what is available. ``llmos components`` shows every kind."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from llmos import hookimpl
from llmos.components import EXTENSION_HOOKS, EXTENSION_KINDS
from llmos.errors import ConflictError, NotFoundError


class ScaleConfig(BaseModel):
    factor: float = 2.0


def scale(value, config):
    """A real factory: what a stage would call with its kind's arguments."""
    return value * config.factor


def _plugin(kind: str, name: str, **extra):
    hook = EXTENSION_HOOKS[kind]

    def impl(register):
        register(name, scale, config=ScaleConfig, description=f"scales by factor ({kind})", **extra)

    impl.__name__ = hook
    return type(f"Plugin_{kind}", (), {"LLMOS_API": 2, hook: staticmethod(hookimpl(impl))})()


def _roundtrip(manager, kind: str, name: str = "x2", **extra):
    manager.register(_plugin(kind, name, **extra), name="extra-plugin")
    assert manager.info("extra-plugin").status == "ok", manager.info("extra-plugin").error
    (ext,) = manager.extensions(kind)
    assert (ext.kind, ext.name, ext.plugin) == (kind, name, "extra-plugin")
    found = manager.get_extension(kind, name)
    assert found is ext and manager.get_extension(kind, f"extra-plugin:{name}") is ext
    cfg = ext.validate_config({"factor": 3})
    assert ext.load_factory()(2, cfg) == 6.0
    with pytest.raises(NotFoundError, match=rf"no .* named 'nope' \(available {kind}: {name};"):
        manager.get_extension(kind, "nope")
    # nothing leaks into the stage components
    assert manager.components() == []
    return ext


def test_hook_register_optimizers(plugin_manager):
    _roundtrip(plugin_manager, "optimizers", "lion")


def test_hook_register_lr_schedules(plugin_manager):
    _roundtrip(plugin_manager, "lr_schedules", "inverse-sqrt")


def test_hook_register_data_readers(plugin_manager):
    _roundtrip(plugin_manager, "data_readers", "tsv")


def test_hook_register_tokenizer_trainers(plugin_manager):
    _roundtrip(plugin_manager, "tokenizer_trainers", "unigram")


def test_hook_register_architectures_with_presets(plugin_manager):
    ext = _roundtrip(plugin_manager, "architectures", "mamba", presets={"tiny": {"factor": 0.5}})
    assert ext.extra["presets"] == {"tiny": {"factor": 0.5}}
    assert ext.to_dict()["presets"] == {"tiny": {"factor": 0.5}}


def test_hook_register_model_loaders(plugin_manager):
    _roundtrip(plugin_manager, "model_loaders", "int4")


def test_hook_register_eval_tasks(plugin_manager):
    _roundtrip(plugin_manager, "eval_tasks", "cloze")


def test_hook_register_eval_metrics(plugin_manager):
    _roundtrip(plugin_manager, "eval_metrics", "exact-match")


def test_hook_register_quantizers(plugin_manager):
    _roundtrip(plugin_manager, "quantizers", "int4")


def test_hook_register_export_formats(plugin_manager):
    _roundtrip(plugin_manager, "export_formats", "gguf")


def test_hook_register_serving_engines(plugin_manager):
    _roundtrip(plugin_manager, "serving_engines", "paged")


def test_duplicate_extension_names_name_both_plugins(plugin_manager):
    plugin_manager.register(_plugin("optimizers", "lion"), name="plug-a")
    plugin_manager.register(_plugin("optimizers", "lion"), name="plug-b")
    with pytest.raises(ConflictError, match=r"optimizer 'lion' is provided by plugins 'plug-a' and 'plug-b'.*'plug-a:lion'"):
        plugin_manager.get_extension("optimizers", "lion")
    assert plugin_manager.get_extension("optimizers", "plug-b:lion").plugin == "plug-b"
    with pytest.raises(NotFoundError, match=r"available optimizers: plug-a:lion, plug-b:lion"):
        plugin_manager.get_extension("optimizers", "adamw")


def test_unknown_kind_and_bad_registrations(plugin_manager):
    from llmos.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown extension kind 'optimizer'.*optimizers"):
        plugin_manager.extensions("optimizer")
    plugin_manager.register(_plugin("quantizers", "int4", presets={"a": {}}), name="bad")
    assert plugin_manager.extensions() == []
    assert "unknown register() argument(s) presets" in plugin_manager.info("bad").error


def test_components_command_lists_extensions_under_their_plugin(plugin_manager):
    from llmos.cli import main as cli

    for kind in EXTENSION_KINDS:
        plugin_manager.register(_plugin(kind, "x2"), name=f"p-{kind.replace('_', '-')}")
    out = CliRunner().invoke(cli, ["components"])
    assert out.exit_code == 0, out.output
    for kind in EXTENSION_KINDS:
        line = next(ln for ln in out.output.splitlines() if ln.startswith(kind + " "))
        assert f"p-{kind.replace('_', '-')}" in line and "x2" in line
    data = json.loads(CliRunner().invoke(cli, ["components", "--kind", "optimizers", "--json"]).output)
    assert [(d["kind"], d["name"], d["plugin"]) for d in data] == [("optimizers", "x2", "p-optimizers")]
    assert data[0]["config"][0]["name"] == "factor"
