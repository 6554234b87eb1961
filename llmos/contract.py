"""The plugin contract check: what every plugin must satisfy.

Run it on your own plugin in a test (``llmos.testing.check_plugin_contract``) or
from the command line (``llmos plugin test PATH``). Returns a list of problems;
an empty list means the plugin is well-formed:

- it declares the plugin API it was written for (``LLMOS_API``) and the core supports it;
- it implements at least one hook, and only hooks that exist, with known arguments;
- its provider hooks run without raising and register valid components;
- each component has a description, a factory that imports, and a config model
  whose defaults validate (a config with required fields is fine, it is reported
  only if its defaults are themselves invalid).
"""

from __future__ import annotations

from typing import Any

from llmos import SUPPORTED_API_VERSIONS


def check_plugin(obj: Any, name: str | None = None) -> list[str]:
    """Check one plugin object (usually its hook module); return the problems found."""
    import pydantic

    from llmos.plugins import OK, PluginManager

    name = name or getattr(obj, "__name__", None) or type(obj).__name__
    problems: list[str] = []
    api = getattr(obj, "LLMOS_API", None)
    if api is None:
        problems.append(f"{name}: declares no LLMOS_API (add `LLMOS_API = 2` to the hook module)")
    elif api not in SUPPORTED_API_VERSIONS:
        problems.append(f"{name}: LLMOS_API = {api!r} is not supported (supported: {sorted(SUPPORTED_API_VERSIONS)})")
    hooks = [n for n in dir(obj) if n.startswith("llmos_") and callable(getattr(obj, n))]
    if not hooks:
        problems.append(f"{name}: implements no llmos_* hook")
    manager = PluginManager(load_entrypoints=False)
    info = manager.register(obj, name=name)
    if info.status != OK:
        problems.append(f"{name}: {info.status}: {info.error}")
        return problems
    comps = manager.components()
    if manager.plugins[name].status != OK:
        problems.append(f"{name}: {manager.plugins[name].error}")
        return problems
    for comp in comps:
        where = f"{name}: component {comp.ref}"
        if not comp.description:
            problems.append(f"{where}: has no description")
        try:
            factory = comp.load_factory()
            if not callable(factory):
                problems.append(f"{where}: factory {comp.factory!r} is not callable")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{where}: factory {comp.factory!r} does not import: {type(exc).__name__}: {exc}")
        if comp.config is not None:
            required = [f for f, i in comp.config.model_fields.items() if i.is_required()]
            if not required:
                try:
                    comp.config.model_validate({})
                except pydantic.ValidationError as exc:
                    problems.append(f"{where}: default config does not validate: {exc.errors()[0]['msg']}")
            try:
                comp.config.model_json_schema()
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{where}: config model has no JSON schema: {exc}")
    return problems


def check_outputs(plugins: dict[str, Any], pipeline_file: str, *, home: str | None = None) -> list[str]:
    """Run ``pipeline_file`` (a tiny pipeline) with ``plugins`` (name → hook module)
    registered beside the installed ones, and check what every stage leaves in
    ``ctx.artifacts`` against :mod:`llmos.artifacts` (the protocols of declared keys;
    undeclared keys are reported too). Runs in a temporary ``$LLMOS_HOME`` unless
    ``home`` is given. Returns the problems (a failed run is one)."""
    import os
    import tempfile

    from llmos import hookimpl
    from llmos.artifacts import check_artifacts
    from llmos.pipeline import load_pipeline, run_pipeline
    from llmos.plugins import PluginManager

    problems: list[str] = []

    class OutputChecker:
        LLMOS_API = 2

        @hookimpl
        def llmos_after_stage(self, ctx: Any, stage: Any) -> None:
            for p in check_artifacts(ctx.artifacts, allow_undeclared=False):
                problems.append(f"after stage {stage.id} ({stage.use}): {p}")

    saved = os.environ.get("LLMOS_HOME")
    with tempfile.TemporaryDirectory(prefix="llmos-plugin-test-") as tmp:
        os.environ["LLMOS_HOME"] = home or tmp
        try:
            manager = PluginManager()
            for name, obj in plugins.items():
                if name in manager.plugins:  # the installed copy of the plugin under test
                    manager.unregister(name)
                info = manager.register(obj, name=name)
                if info.status != "ok":
                    return [f"{name}: {info.status}: {info.error}"]
            manager.register(OutputChecker(), name="llmos-output-checker")
            from llmos.plugins import set_manager
            from llmos.registry import open_registry

            previous = set_manager(manager)  # steps that look up the manager see this one
            try:
                result = run_pipeline(load_pipeline(pipeline_file, manager=manager), manager=manager,
                                      registry=open_registry(), handle_sigint=False)
            finally:
                set_manager(previous)
            if result.status != "completed":
                problems.append(f"the run of {pipeline_file} {result.status}: {result.error}")
        finally:
            if saved is None:
                os.environ.pop("LLMOS_HOME", None)
            else:
                os.environ["LLMOS_HOME"] = saved
    return problems
