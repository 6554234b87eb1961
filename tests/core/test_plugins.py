"""Plugin loading through real entry points, and isolation of broken plugins."""

from __future__ import annotations

import json

import pytest

GOOD = '''
LLMOS_API = 2
from llmos import hookimpl

@hookimpl
def llmos_register_data_steps(register):
    from pydantic import BaseModel

    class Cfg(BaseModel):
        path: str = "corpus.txt"
        lowercase: bool = False

    register("lines", "{module}:make", config=Cfg, description="Lines of a text file")

def make(cfg):
    return cfg
'''

BROKEN_IMPORT = "import does_not_exist_anywhere\n"

INCOMPATIBLE = '''
LLMOS_API = 99
from llmos import hookimpl

@hookimpl
def llmos_register_data_steps(register):
    register("never", "x:y", description="never registered")
'''

RAISES_IN_HOOK = '''
LLMOS_API = 2
from llmos import hookimpl

@hookimpl
def llmos_register_model_steps(register):
    register("half", "x:y", description="registered before the error")
    raise RuntimeError("boom in register")
'''

TYPO_HOOK = '''
LLMOS_API = 2
from llmos import hookimpl

@hookimpl
def llmos_register_modles(register):
    pass
'''

BAD_ARG = '''
LLMOS_API = 2
from llmos import hookimpl

@hookimpl
def llmos_register_data_steps(register, extra_thing):
    pass
'''


def _plugins(cp) -> dict[str, dict]:
    assert cp.returncode == 0, cp.stderr
    return {p["name"]: p for p in json.loads(cp.stdout)}


def test_entry_point_plugin_loads_and_provides_components(dists, llmos_cli):
    dists.make("llmos-lines", "llmos_lines", GOOD.replace("{module}", "llmos_lines"))
    env = {"LLMOS_PLUGINS": "llmos-lines"}
    plugins = _plugins(llmos_cli("plugin", "list", "--json", env=env))
    assert plugins["llmos-lines"]["status"] == "ok"
    assert plugins["llmos-lines"]["version"] == "1.0"
    assert plugins["llmos-lines"]["dist"] == "llmos-lines"
    assert plugins["llmos-lines"]["hooks"] == ["llmos_register_data_steps"]
    comps = json.loads(llmos_cli("components", "--json", env=env).stdout)
    assert [c["ref"] for c in comps] == ["data.lines"]
    fields = {f["name"]: f for f in comps[0]["config"]}
    assert fields["path"]["default"] == "corpus.txt" and fields["lowercase"]["type"] == "bool"


@pytest.mark.parametrize(
    ("source", "status", "reason"),
    [
        (BROKEN_IMPORT, "broken", "failed to import"),
        (INCOMPATIBLE, "incompatible", "plugin API 99"),
        (RAISES_IN_HOOK, "broken", "boom in register"),
        (TYPO_HOOK, "broken", "unknown hook(s) llmos_register_modles"),
        (BAD_ARG, "broken", "extra_thing"),
    ],
    ids=["import-error", "incompatible-api", "raises-in-hook", "unknown-hook", "unknown-argument"],
)
def test_broken_plugin_is_isolated(dists, llmos_cli, source, status, reason):
    dists.make("llmos-lines", "llmos_lines", GOOD.replace("{module}", "llmos_lines"))
    dists.make("llmos-bad", "llmos_bad", source)
    env = {"LLMOS_PLUGINS": "llmos-lines,llmos-bad"}
    plugins = _plugins(llmos_cli("plugin", "list", "--json", env=env))
    assert plugins["llmos-bad"]["status"] == status
    assert reason in plugins["llmos-bad"]["error"]
    assert plugins["llmos-lines"]["status"] == "ok"
    # the rest keeps working: --help, components
    assert llmos_cli("--help", env=env).returncode == 0
    comps = json.loads(llmos_cli("components", "--json", env=env).stdout)
    assert [c["ref"] for c in comps] == ["data.lines"]  # nothing from the broken plugin, not even "half"
    # the table shows it too
    table = llmos_cli("plugin", "list", env=env).stdout
    assert "llmos-bad" in table and status in table


def test_strict_mode_reraises(dists, llmos_cli):
    dists.make("llmos-bad", "llmos_bad", BROKEN_IMPORT)
    cp = llmos_cli("plugin", "list", env={"LLMOS_PLUGINS": "llmos-bad", "LLMOS_STRICT_PLUGINS": "1"})
    assert cp.returncode != 0
    assert "llmos-bad" in cp.stderr and "does_not_exist_anywhere" in cp.stderr


def test_allow_list(dists, llmos_cli):
    dists.make("llmos-lines", "llmos_lines", GOOD.replace("{module}", "llmos_lines"))
    dists.make("llmos-bad", "llmos_bad", BROKEN_IMPORT)
    plugins = _plugins(llmos_cli("plugin", "list", "--json", "--all", env={"LLMOS_PLUGINS": "llmos-lines"}))
    assert plugins["llmos-bad"]["status"] == "skipped"  # never imported, so not broken
    none = _plugins(llmos_cli("plugin", "list", "--json", env={"LLMOS_PLUGINS": ""}))
    assert none == {}


def test_disable_persists_across_processes_and_blocks_import(dists, llmos_cli):
    # the plugin would fail on import: disabling must stop it before import
    dists.make("llmos-bad", "llmos_bad", BROKEN_IMPORT)
    env = {"LLMOS_PLUGINS": "llmos-bad"}
    assert llmos_cli("plugin", "disable", "llmos-bad", env=env).returncode == 0
    plugins = _plugins(llmos_cli("plugin", "list", "--json", env=env))
    assert plugins["llmos-bad"]["status"] == "disabled"
    assert llmos_cli("plugin", "enable", "llmos-bad", env=env).returncode == 0
    assert _plugins(llmos_cli("plugin", "list", "--json", env=env))["llmos-bad"]["status"] == "broken"


def test_disable_unknown_plugin_is_a_clear_error(llmos_cli):
    cp = llmos_cli("plugin", "disable", "nope", env={"LLMOS_PLUGINS": ""})
    assert cp.returncode == 2
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no plugin named 'nope' (installed: ")


def test_duplicate_component_names(dists, llmos_cli):
    dists.make("llmos-lines", "llmos_lines", GOOD.replace("{module}", "llmos_lines"))
    dists.make("llmos-lines2", "llmos_lines2", GOOD.replace("{module}", "llmos_lines2"))
    env = {"LLMOS_PLUGINS": "llmos-lines,llmos-lines2"}
    comps = json.loads(llmos_cli("components", "--json", env=env).stdout)
    assert sorted(c["plugin"] for c in comps) == ["llmos-lines", "llmos-lines2"]
    table = llmos_cli("components", env=env).stdout
    assert "llmos-lines:data.lines" in table and "llmos-lines2:data.lines" in table


def test_entry_point_cache_sees_new_installs(dists, llmos_cli, llmos_home):
    dists.make("llmos-lines", "llmos_lines", GOOD.replace("{module}", "llmos_lines"))
    env = {"LLMOS_PLUGINS": "llmos-lines,llmos-late"}
    assert set(_plugins(llmos_cli("plugin", "list", "--json", env=env))) == {"llmos-lines"}
    assert list((llmos_home / "cache").glob("entry-points-*.json"))
    dists.make("llmos-late", "llmos_late", GOOD.replace("{module}", "llmos_late"))  # "pip install"
    assert set(_plugins(llmos_cli("plugin", "list", "--json", env=env))) == {"llmos-lines", "llmos-late"}


# -- in-process API -------------------------------------------------------------------


class CodePlugin:
    LLMOS_API = 2

    def __init__(self, name="thing"):
        self.name = name
        self.events = []

    from llmos import hookimpl

    @hookimpl
    def llmos_register_optimizer_steps(self, register):
        register(self.name, lambda cfg: ("made", cfg), description="A code plugin's component")

    @hookimpl
    def llmos_after_train_step(self, step, metrics):
        self.events.append((step, metrics))


class RaisingListener:
    LLMOS_API = 2
    from llmos import hookimpl

    @hookimpl
    def llmos_after_train_step(self, step):
        raise ValueError("listener failed")


def test_code_plugins_and_ambiguity(plugin_manager):
    from llmos.errors import ConflictError, NotFoundError

    a, b = CodePlugin(), CodePlugin()
    plugin_manager.register(a, name="a")
    plugin_manager.register(b, name="b")
    with pytest.raises(ConflictError, match=r"provided by plugins 'a' and 'b'.*'a:optimizer.thing'"):
        plugin_manager.get_component("optimizer.thing")
    assert plugin_manager.get_component("b:optimizer.thing").plugin == "b"
    with pytest.raises(NotFoundError, match="available in stage optimizer: optimizer.thing"):
        plugin_manager.get_component("optimizer.other")
    assert plugin_manager.get_component("a:optimizer.thing").create() == ("made", None)


def test_notify_isolates_a_raising_plugin(plugin_manager):
    good = CodePlugin()
    plugin_manager.register(good, name="good")
    plugin_manager.register(RaisingListener(), name="raiser")
    plugin_manager.notify("llmos_after_train_step", ctx=None, step=1, metrics={"loss": 1.0})
    plugin_manager.notify("llmos_after_train_step", ctx=None, step=2, metrics={"loss": 0.5})
    assert good.events == [(1, {"loss": 1.0}), (2, {"loss": 0.5})]
    info = plugin_manager.info("raiser")
    assert info.status == "broken" and "listener failed" in info.error


def test_registering_same_name_twice_is_refused(plugin_manager):
    from llmos.errors import ConflictError

    plugin_manager.register(CodePlugin(), name="x")
    with pytest.raises(ConflictError, match="already registered"):
        plugin_manager.register(CodePlugin(), name="x")


def test_invalid_registrations_mark_plugin_broken(plugin_manager):
    from llmos import hookimpl

    class Bad:
        @hookimpl
        def llmos_register_data_steps(self, register):
            register("Not A Name", "m:f", description="x")

    plugin_manager.register(Bad(), name="bad")
    assert plugin_manager.components() == []
    assert "invalid component name 'Not A Name'" in plugin_manager.info("bad").error


# -- plugin API 1 keeps loading -------------------------------------------------------

API1_PLUGIN = '''
LLMOS_API = 1
from llmos import hookimpl

@hookimpl
def llmos_register_data(register):
    register("old-lines", "{module}:make", description="an API-1 data step")

@hookimpl
def llmos_register_optimizers(register):   # API 1: training *steps*
    register("old-loop", "{module}:make", description="an API-1 training step")

@hookimpl
def llmos_on_run_start(ctx):
    pass

@hookimpl
def llmos_before_stage(stage):              # unchanged in API 2
    pass

def make(cfg):
    return cfg
'''


def test_api1_plugin_keeps_loading_with_its_hooks_renamed(dists, llmos_cli):
    dists.make("llmos-old", "llmos_old", API1_PLUGIN.replace("{module}", "llmos_old"))
    env = {"LLMOS_PLUGINS": "llmos-old"}
    cp = llmos_cli("components", "--json", env=env)
    assert cp.returncode == 0, cp.stderr
    comps = json.loads(cp.stdout)
    # API 1's llmos_register_optimizers meant training steps: they stay steps, not optimizers
    assert sorted(c["ref"] for c in comps) == ["data.old-lines", "optimizer.old-loop"]
    assert all("kind" not in c for c in comps)
    warning = [ln for ln in cp.stderr.splitlines() if "llmos-old" in ln]
    assert len(warning) == 1, cp.stderr
    assert "plugin API 1 (deprecated): set LLMOS_API = 2 and rename" in warning[0]
    assert "llmos_register_optimizers -> llmos_register_optimizer_steps" in warning[0]
    assert "llmos_on_run_start -> llmos_before_run" in warning[0]
    info = _plugins(llmos_cli("plugin", "list", "--json", env=env))["llmos-old"]
    assert info["status"] == "ok" and info["api_version"] == 1 and "deprecated" in info["warning"]
    assert info["hooks"] == ["llmos_before_run", "llmos_before_stage", "llmos_register_data_steps",
                             "llmos_register_optimizer_steps"]


def test_api1_lifecycle_hooks_are_called_under_their_new_names(plugin_manager):
    import warnings

    from llmos import hookimpl
    from llmos.plugins import PluginDeprecationWarning

    seen = []

    class Old:
        LLMOS_API = 1

        @hookimpl
        def llmos_on_train_step(self, step, metrics):
            seen.append(("train", step))

        @hookimpl
        def llmos_on_metrics(self, source):
            seen.append(("metrics", source))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = plugin_manager.register(Old(), name="old")
    assert info.status == "ok"
    assert [w.category for w in caught] == [PluginDeprecationWarning]
    plugin_manager.notify("llmos_after_train_step", ctx=None, step=3, metrics={})
    plugin_manager.notify("llmos_after_metrics", source="serve", step=None, metrics={})
    assert seen == [("train", 3), ("metrics", "serve")]
