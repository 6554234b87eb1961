"""The hook contract: documented, named by one grammar, reference in sync."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from llmos import hookimpl, hookspecs
from llmos.components import STAGE_HOOKS, STAGES
from llmos.hookdocs import hook_names, render

HOOKS = hook_names()
ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_has_a_provider_hook():
    assert list(STAGE_HOOKS) == list(STAGES) == ["data", "model", "optimizer", "compression", "deployment", "monitoring"]
    assert set(STAGE_HOOKS.values()) <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: argument {param} is not documented"
    assert ":returns:" in doc, f"{name}: return value not documented"
    assert "Example::" in doc, f"{name}: no example"
    assert re.match(r"^llmos_(register_[a-z]+|before_[a-z]+|after_[a-z]+|on_[a-z_]+)$", name), name


def test_reference_is_in_sync():
    assert (ROOT / "docs" / "hooks.md").read_text() == render(), "run: python -m llmos.hookdocs > docs/hooks.md"


def _recorder():
    """A plugin implementing every hook with every argument, recording calls."""
    calls: list[tuple[str, dict]] = []
    ns: dict = {"LLMOS_API": 1}
    for name in HOOKS:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        src = f"def {name}({', '.join(params)}):\n    calls.append(({name!r}, dict({', '.join(f'{p}={p}' for p in params)})))\n"
        local: dict = {"calls": calls}
        exec(src, local)  # noqa: S102 - building a test plugin with exact spec signatures
        ns[name] = hookimpl(local[name])
    return type("Recorder", (), {k: staticmethod(v) if callable(v) else v for k, v in ns.items()})(), calls


def test_every_hook_can_be_implemented_and_called(plugin_manager):
    plugin, calls = _recorder()
    assert plugin_manager.register(plugin, name="recorder").status == "ok"
    for name in HOOKS:
        args = {p: f"<{p}>" for p in inspect.signature(getattr(hookspecs, name)).parameters}
        plugin_manager.call_each(name, **args)
    assert [c[0] for c in calls] == HOOKS
    for name, received in calls:
        assert received == {p: f"<{p}>" for p in inspect.signature(getattr(hookspecs, name)).parameters}


def test_implementations_may_take_a_subset_of_arguments(plugin_manager):
    seen = []

    class Partial:
        LLMOS_API = 1

        @staticmethod
        @hookimpl
        def llmos_after_stage(duration_s):
            seen.append(duration_s)

    plugin_manager.register(Partial(), name="partial")
    plugin_manager.notify("llmos_after_stage", ctx=None, stage=None, result=None, duration_s=1.5)
    assert seen == [1.5]
