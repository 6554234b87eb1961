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
def test_hookspec_is_documented(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name}: argument {param} is not documented"
    assert ":returns:" in doc, f"{name}: return value not documented"
    assert "Example::" in doc, f"{name}: no example"
    # one grammar: providers say what they register; lifecycle is before_/after_/on_<x>_error;
    # a service one plugin provides is open_<service>
    assert re.match(r"^llmos_(register_[a-z_]+|before_[a-z_]+|after_[a-z_]+|on_[a-z_]+_error|open_[a-z_]+)$",
                    name), name


def test_provider_hook_names_say_what_they_register():
    from llmos.components import EXTENSION_HOOKS

    assert all(h == f"llmos_register_{stage}_steps" for stage, h in STAGE_HOOKS.items() if stage != "data") \
        and STAGE_HOOKS["data"] == "llmos_register_data_steps"
    assert STAGE_HOOKS["compression"] == "llmos_register_compression_steps"
    assert set(EXTENSION_HOOKS.values()) <= set(HOOKS)
    providers = {h for h in HOOKS if h.startswith("llmos_register_")}
    assert providers == set(STAGE_HOOKS.values()) | set(EXTENSION_HOOKS.values()) | {"llmos_register_commands"}


def test_documented_name_pattern_is_the_one_enforced():
    from llmos.components import NAME_RE

    assert f"``{NAME_RE.pattern}``" in (hookspecs.__doc__ or "")
    assert NAME_RE.match("my-name_2") and not NAME_RE.match("my.name") and not NAME_RE.match("Name")


def test_examples_name_factories_that_exist():
    """Every standard-plugin "module:attr" string and import in the hook docs resolves
    (no made-up factories); third-party examples use my_* packages."""
    from llmos.components import import_object

    refs: set[str] = set()
    for doc in [hookspecs.__doc__ or ""] + [getattr(hookspecs, n).__doc__ or "" for n in HOOKS]:
        for ref in re.findall(r'"([A-Za-z_][\w.]*:[A-Za-z_][\w.]*)"', doc):
            if ref in ("module:attr", "plugin:adamw"):  # placeholders of the syntax
                continue
            assert ref.startswith(("llmos", "my_")), f"example factory {ref!r}: use a real one or a my_* package"
            if ref.startswith("llmos"):
                refs.add(ref)
        for mod, names in re.findall(r"from (llmos_\w+(?:\.\w+)*) import ([\w, ]+)", doc):
            refs |= {f"{mod}:{n.strip()}" for n in names.split(",")}
    assert len(refs) >= 8, refs
    for ref in sorted(refs):
        assert import_object(ref) is not None, ref


def test_every_hook_has_a_test_named_for_it():
    """datasette's rule: each hook llmos_X is exercised by a test named test_hook_X...
    that mentions it. Adding a hook without its test fails here."""
    import ast

    from llmos.components import EXTENSION_KINDS

    files = list((ROOT / "tests").rglob("test_*.py")) + list((ROOT / "plugins").glob("*/tests/test_*.py"))
    tests: dict[str, str] = {}
    for f in files:
        src = f.read_text()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_hook_"):
                tests[node.name] = ast.get_source_segment(src, node) or ""
    suffixes = sorted((h.removeprefix("llmos_") for h in HOOKS), key=len, reverse=True)
    covered: dict[str, list[str]] = {}
    for test, body in tests.items():
        rest = test.removeprefix("test_hook_")
        hook = next((s for s in suffixes if rest == s or rest.startswith(s + "_")), None)
        if hook is None:  # test_hook_module_is_light and the like: not about one hook
            continue
        kind = hook.removeprefix("register_")
        if f"llmos_{hook}" in body or (kind in EXTENSION_KINDS and f'"{kind}"' in body):
            covered.setdefault(hook, []).append(test)
    missing = [h for h in HOOKS if h.removeprefix("llmos_") not in covered]
    assert not missing, f"hooks with no test named test_hook_<name>: {missing}"


def test_reference_is_in_sync():
    assert (ROOT / "docs" / "hooks.md").read_text() == render(), "run: python -m llmos.hookdocs > docs/hooks.md"


def _recorder():
    """A plugin implementing every hook with every argument, recording calls."""
    calls: list[tuple[str, dict]] = []
    ns: dict = {"LLMOS_API": 2}
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
        LLMOS_API = 2

        @staticmethod
        @hookimpl
        def llmos_after_stage(duration_s):
            seen.append(duration_s)

    plugin_manager.register(Partial(), name="partial")
    plugin_manager.notify("llmos_after_stage", ctx=None, stage=None, result=None, duration_s=1.5)
    assert seen == [1.5]
