"""The public SDK (llmos.sdk): what plugins may import, and nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(p for p in ROOT.glob("plugins/*/llmos_*/**/*.py"))
#: every standard plugin, llmos-community and llmos-registry included (they were core code)
SDK_ONLY_SOURCES = PLUGIN_SOURCES
#: what a plugin's own code may import from the core
PUBLIC = {"llmos", "llmos.sdk"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, [a.name for a in node.names]


def _private_imports(paths):
    bad = []
    for f in paths:
        for line, module, names in _imports(f):
            if module.split(".")[0] != "llmos":
                continue
            where = f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}:{line}"
            if module not in PUBLIC:
                bad.append(f"{where}: imports {module} (use llmos.sdk)")
            elif any(n.startswith("_") for n in names):
                bad.append(f"{where}: imports private {', '.join(n for n in names if n.startswith('_'))} from {module}")
    return bad


def test_standard_plugins_import_only_the_sdk():
    bad = _private_imports(SDK_ONLY_SOURCES)
    assert not bad, "standard plugins import private core modules:\n" + "\n".join(bad)


def test_no_plugin_grafts_commands_onto_core_groups():
    bad = [f"{f.relative_to(ROOT)}:{line}: imports {m}" for f in PLUGIN_SOURCES for line, m, _ in _imports(f)
           if m == "llmos.cli" or m.startswith("llmos.cli.")]
    assert not bad, "add commands through llmos_register_commands, never onto llmos.cli groups:\n" + "\n".join(bad)


@pytest.mark.parametrize("source", [
    "from llmos.cli._output import echo_json\n",
    "from llmos.context import _NullProgress\n",
    "from llmos.plugins import get_manager\n",
    "import llmos.cli.run\n",
    "from llmos.sdk import _LAZY\n",
])
def test_the_checks_catch_private_imports(tmp_path, source):
    mod = tmp_path / "m.py"
    mod.write_text(source)
    graft = [m for _, m, _ in _imports(mod) if m.startswith("llmos.cli")]
    assert _private_imports([mod]) or graft


def test_every_sdk_name_resolves_and_the_module_is_light():
    import llmos.sdk as sdk

    for name in sdk.__all__:
        assert getattr(sdk, name) is not None, name
    code = ("import sys, llmos.sdk; print(sorted(m for m in ('torch', 'numpy', 'transformers', 'click', 'rich')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_context_standalone_for_a_plugins_tests(tmp_path):
    from llmos.sdk import METRICS, RunContext

    class Step:
        def run(self, ctx):
            with ctx.progress(2, "work") as bar:
                for i in range(2):
                    ctx.log_metrics(i + 1, {"loss": 1.0 / (i + 1)})
                    bar.update(1)
            ctx.log_metrics(2, {"val_loss": 0.4}, kind="eval")
            METRICS.set(ctx, {"val_loss": 0.4})
            return ctx.checkpoint_dir()

    ctx = RunContext.standalone(tmp_path / "w", artifacts={"samples": []})
    ckpt = Step().run(ctx)
    assert ckpt == tmp_path / "w" / "checkpoints" / "test" and ckpt.is_dir()
    assert ctx.logged == [("train", 1, {"loss": 1.0}), ("train", 2, {"loss": 0.5}), ("eval", 2, {"val_loss": 0.4})]
    assert ctx.artifacts == {"samples": [], "metrics": {"val_loss": 0.4}}


def test_key_value_options():
    from llmos.sdk import ValidationError, parse_key_values

    assert parse_key_values(["a=1", "b = x", "c=[1, 2]", "d=true"]) == {"a": 1, "b": "x", "c": [1, 2], "d": True}
    assert parse_key_values(["a=1"], typed=False) == {"a": "1"}
    with pytest.raises(ValidationError, match=r"^bad tag 'oops': write KEY=VALUE, e.g. --tag k=v$"):
        parse_key_values(["oops"], what="tag", option="--tag", example="k=v")


def test_exc_line_is_one_line():
    from llmos.sdk import NotFoundError, exc_line

    assert exc_line(ValueError("a\n  b")) == "ValueError: a b"
    assert exc_line(NotFoundError("no such model")) == "no such model"
    assert exc_line(None) == "" and len(exc_line(RuntimeError("x" * 1000))) < 320


def _circles(graph: dict[str, set[str]]) -> list[str]:
    """Import circles of ``graph`` (module -> modules it imports), each written from its
    smallest module, e.g. ``a -> b -> a``: one per import that closes a circle in a
    depth-first walk (linear in the graph's size; empty exactly when there is none)."""
    found: set[str] = set()
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycle = stack[stack.index(nxt):]
                i = cycle.index(min(cycle))
                found.add(" -> ".join(cycle[i:] + cycle[:i] + [cycle[i]]))
            elif nxt not in done:
                visit(nxt, stack + [nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return sorted(found)


def test_plugin_import_graph_has_no_circles():
    """Module-level and function-level imports between the modules of each plugin."""
    modules = {}
    for f in PLUGIN_SOURCES:
        pkg_root = next(p for p in f.parents if p.name.startswith("llmos_") and p.parent.parent.name == "plugins")
        modules[".".join(f.relative_to(pkg_root.parent).with_suffix("").parts).removesuffix(".__init__")] = f
    graph: dict[str, set[str]] = {}
    for mod, f in modules.items():
        graph.setdefault(mod, set())
        for _, m, names in _imports(f):
            # ``from llmos_registry import versions`` imports the module llmos_registry.versions
            targets = [f"{m}.{n}" for n in names if f"{m}.{n}" in modules] or [m]
            graph[mod].update(t for t in targets if t.split(".")[0].startswith("llmos_") and t != mod)
    # a package's __init__ naming its own submodules for documentation is not an import
    cycles = [c for c in _circles(graph) if not any(part.endswith("__init__") for part in c.split(" -> "))]
    assert not cycles, "import circles:\n" + "\n".join(cycles)


CORE_MODULES = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
                for f in ROOT.glob("llmos/**/*.py") if "migrations" not in f.parts}


def _module_level_imports(tree: ast.Module):
    """``(module, names)`` imported when the module is imported: top-level statements,
    inside ``if``/``try`` too, but not under ``if TYPE_CHECKING:`` nor inside functions."""
    def walk(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                for part in (node.body, node.orelse, getattr(node, "finalbody", []),
                             *[h.body for h in getattr(node, "handlers", [])]):
                    yield from walk(part)
            elif isinstance(node, ast.Import):
                yield from ((a.name, []) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield node.module, [a.name for a in node.names]
    yield from walk(tree.body)


def _core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, f in CORE_MODULES.items():
        edges = graph.setdefault(mod, set())
        for m, names in _module_level_imports(ast.parse(f.read_text())):
            # ``from llmos.hookspecs import cli`` imports the module llmos.hookspecs.cli
            targets = [f"{m}.{n}" for n in names if f"{m}.{n}" in CORE_MODULES] or [m]
            edges.update(t for t in targets if t in CORE_MODULES and t != mod)
    return graph


def test_core_import_graph_has_no_circles():
    """Module-level imports between the core's modules (llmos/, migrations aside): a
    package's ``__init__`` counts like any module."""
    graph = _core_graph()
    assert len(graph) > 30 and sum(map(len, graph.values())) > 40  # the graph was read
    cycles = _circles(graph)
    assert not cycles, "import circles in the core:\n" + "\n".join(cycles)


def test_the_circle_check_finds_circles():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _circles({"a": {"b"}, "b": set()}) == []
    assert _circles({"a": {"b", "c"}, "b": {"c"}, "c": {"b"}}) == ["b -> c -> b"]
    tree = ast.parse("import llmos.x\nif TYPE_CHECKING:\n    import llmos.y\ntry:\n    from llmos import z\n"
                     "except ImportError:\n    pass\ndef f():\n    import llmos.w\n")
    assert [m for m, _ in _module_level_imports(tree)] == ["llmos.x", "llmos"]
