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
