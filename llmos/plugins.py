"""The plugin manager: loading, isolation, enable/disable, component lookup.

Plugins are found through the ``llmos`` entry-point group (standard plugins are
loaded exactly like community ones) or registered in code. Loading is guarded:

- ``LLMOS_PLUGINS=a,b`` loads only the named entry-point plugins (an empty value
  loads none: commands that use the registry then need its plugin, llmos-registry, named
  too); the persisted disabled list (``llmos plugin disable``) blocks a
  plugin *before* it is imported.
- a plugin that fails to import, declares an API version the core does not
  support (module attribute ``LLMOS_API``), has malformed hook implementations,
  or raises inside a hook is marked ``broken`` with the reason and skipped; the
  rest keeps working. ``LLMOS_STRICT_PLUGINS=1`` re-raises instead (for CI of
  plugin authors).
- ``LLMOS_TRACE_PLUGINS=1`` prints every hook call to stderr.
- a plugin written for plugin API 1 (``LLMOS_API = 1``) keeps loading: its old
  hook names are mapped onto API 2's (:data:`API1_HOOK_NAMES`) and a one-line
  deprecation warning names the renames.

Only pluggy's public API is used; each hook implementation is called on its
own (``HookImpl.function`` with the arguments it asks for), which is what makes
per-plugin isolation and attribution of components possible.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy

from llmos import API_VERSION, SUPPORTED_API_VERSIONS, hookspecs
from llmos.components import (
    EXTENSION_HOOKS,
    EXTENSION_KINDS,
    NAME_RE,
    STAGE_HOOKS,
    STAGES,
    Component,
    ComponentRef,
    Extension,
)
from llmos.config import load_settings, save_settings
from llmos.errors import ConflictError, NotFoundError, PluginError, ValidationError
from llmos.errors import exc_line as _exc_line


ENTRY_POINT_GROUP = "llmos"

OK, BROKEN, DISABLED, SKIPPED, INCOMPATIBLE = "ok", "broken", "disabled", "skipped", "incompatible"

#: API-1 hook name -> API-2 hook name, for plugins declaring ``LLMOS_API = 1``.
#: (API 1's ``llmos_register_optimizers`` registered training *steps*; in API 2 that
#: name registers torch optimizers, so for an API-1 plugin it maps to
#: ``llmos_register_optimizer_steps``.)
API1_HOOK_NAMES: dict[str, str] = {
    "llmos_register_data": "llmos_register_data_steps",
    "llmos_register_models": "llmos_register_model_steps",
    "llmos_register_optimizers": "llmos_register_optimizer_steps",
    "llmos_register_compressors": "llmos_register_compression_steps",
    "llmos_register_deployers": "llmos_register_deployment_steps",
    "llmos_register_monitors": "llmos_register_monitoring_steps",
    "llmos_on_run_start": "llmos_before_run",
    "llmos_on_run_end": "llmos_after_run",
    "llmos_on_train_step": "llmos_after_train_step",
    "llmos_on_evaluate": "llmos_after_evaluate",
    "llmos_on_version_registered": "llmos_after_version_registered",
    "llmos_on_alias_moved": "llmos_after_alias_moved",
    "llmos_on_request_served": "llmos_after_request",
    "llmos_on_metrics": "llmos_after_metrics",
}


class PluginDeprecationWarning(DeprecationWarning):
    """A plugin uses a deprecated part of the plugin API (e.g. API-1 hook names)."""


class _API1Plugin:
    """An API-1 plugin seen through API-2 hook names (the object pluggy registers).

    Hooks whose name did not change (``llmos_before_stage``...) pass through; renamed
    ones appear under their new name only, so pluggy never sees an unknown API-1 name.
    """

    def __init__(self, obj: Any, renames: dict[str, str]) -> None:
        self._obj = obj
        for name in dir(obj):
            if name.startswith("llmos_"):
                setattr(self, renames.get(name, name), getattr(obj, name))


class PluginInfo:
    """What the manager knows about one plugin (loaded or not).
    (A plain class, not a dataclass: building dataclasses costs start-up time.)"""

    def __init__(
        self,
        name: str,
        status: str = OK,
        source: str = "entry-point",  # or "code"
        dist: str | None = None,
        version: str | None = None,
        module: str | None = None,
        api_version: int | None = None,
        error: str | None = None,
        obj: Any = None,
    ) -> None:
        self.name, self.status, self.source = name, status, source
        self.dist, self.version, self.module = dist, version, module
        self.api_version, self.error, self.obj = api_version, error, obj
        self.warning: str | None = None  # e.g. a deprecation (the plugin still works)
        self.hook_obj: Any = None  # what pluggy sees, when it differs from obj (API 1)

    def __repr__(self) -> str:
        return f"PluginInfo(name={self.name!r}, status={self.status!r}, error={self.error!r})"

    @property
    def hooks(self) -> list[str]:
        """Hook names as the core calls them (API-1 names shown renamed)."""
        obj = self.hook_obj if self.hook_obj is not None else self.obj
        return sorted(n for n in dir(obj) if n.startswith("llmos_")) if obj is not None else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "source": self.source,
            "dist": self.dist,
            "version": self.version,
            "module": self.module,
            "api_version": self.api_version,
            "hooks": self.hooks,
            "error": self.error,
            "warning": self.warning,
        }


def _strict() -> bool:
    return os.environ.get("LLMOS_STRICT_PLUGINS", "") not in ("", "0", "false")


def _allow_list() -> set[str] | None:
    raw = os.environ.get("LLMOS_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


class PluginManager:
    """llmos's plugin manager (a thin, isolating layer over :class:`pluggy.PluginManager`).

    :param load_entrypoints: load plugins from the ``llmos`` entry-point group now.
    """

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self.pm = pluggy.PluginManager("llmos")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._components: list[Component] | None = None
        self._extensions: list[Extension] | None = None
        self._trace = os.environ.get("LLMOS_TRACE_PLUGINS", "") not in ("", "0")
        if load_entrypoints:
            self.load_entrypoints()

    # -- loading -----------------------------------------------------------------

    def load_entrypoints(self) -> None:
        """Load every plugin of the ``llmos`` entry-point group (guarded)."""
        from llmos._entrypoints import entry_points
        from llmos.config import home

        allow = _allow_list()
        disabled = set(load_settings().get("disabled", []))
        seen: set[str] = set()
        for ep in sorted(entry_points(ENTRY_POINT_GROUP, home() / "cache"), key=lambda e: e.name):
            if ep.name in seen or ep.name in self.plugins:
                continue  # the same distribution visible twice on sys.path
            seen.add(ep.name)
            info = PluginInfo(name=ep.name, dist=ep.dist, version=ep.version, module=ep.value)
            self.plugins[ep.name] = info
            if allow is not None and ep.name not in allow:
                info.status, info.error = SKIPPED, "not in LLMOS_PLUGINS"
                continue
            if ep.name in disabled:
                info.status, info.error = DISABLED, "disabled (llmos plugin enable to re-enable)"
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                self._mark_broken(info, f"failed to import {ep.value}: {_exc_line(exc)}", exc)
                continue
            self._register_obj(info, obj)
        self._components = self._extensions = None

    def register(self, obj: Any, name: str | None = None) -> PluginInfo:
        """Register a plugin object (module, class or instance) from code.

        :returns: its :class:`PluginInfo` (check ``status``: it may be ``broken``).
        """
        name = name or getattr(obj, "__name__", None) or type(obj).__name__
        if name in self.plugins and self.plugins[name].status == OK:
            raise ConflictError(f"a plugin named {name!r} is already registered; pass another name=")
        info = PluginInfo(name=name, source="code", module=getattr(obj, "__name__", None))
        self.plugins[name] = info
        self._register_obj(info, obj)
        self._components = self._extensions = None
        return info

    def unregister(self, name: str) -> None:
        info = self.plugins.pop(name, None)
        if info is not None and self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._components = self._extensions = None

    def _register_obj(self, info: PluginInfo, obj: Any) -> None:
        info.obj = obj
        api = getattr(obj, "LLMOS_API", None)
        info.api_version = api
        if api is not None and api not in SUPPORTED_API_VERSIONS:
            info.status = INCOMPATIBLE
            info.error = (
                f"written for llmos plugin API {api}, this llmos supports "
                f"{sorted(SUPPORTED_API_VERSIONS)}: upgrade llmos or the plugin"
            )
            if _strict():
                raise PluginError(f"plugin {info.name!r}: {info.error}")
            return
        hook_obj = obj
        if api == 1:
            hook_obj = self._api1_view(info, obj)
        try:
            self.pm.register(hook_obj, name=info.name)
        except Exception as exc:  # noqa: BLE001 - pluggy validation, duplicate objects
            self._mark_broken(info, f"invalid hook implementation: {_exc_line(exc)}", exc)
            return
        unknown = [
            n
            for n in dir(hook_obj)
            if self.pm.parse_hookimpl_opts(hook_obj, n) is not None
            and getattr(getattr(self.pm.hook, n, None), "spec", None) is None
        ]
        if unknown:
            self.pm.unregister(name=info.name)
            self._mark_broken(info, f"unknown hook(s) {', '.join(unknown)} (typo? see llmos.hookspecs)")
            return
        info.status, info.error = OK, None

    def _api1_view(self, info: PluginInfo, obj: Any) -> Any:
        """Map an API-1 plugin's hook names onto API 2's and warn once, in one line."""
        renames = {n: API1_HOOK_NAMES[n] for n in dir(obj) if n in API1_HOOK_NAMES}
        view = _API1Plugin(obj, renames)
        info.hook_obj = view
        listed = ", ".join(f"{old} -> {new}" for old, new in sorted(renames.items()))
        info.warning = (
            f"written for plugin API 1 (deprecated): set LLMOS_API = {API_VERSION}"
            + (f" and rename {listed}" if listed else "")
        )
        import logging
        import warnings

        message = f"plugin {info.name} is {info.warning}"
        warnings.warn(message, PluginDeprecationWarning, stacklevel=2)
        logging.getLogger("llmos.plugins").warning("%s", message)
        return view

    def _mark_broken(self, info: PluginInfo, reason: str, exc: BaseException | None = None) -> None:
        info.status, info.error = BROKEN, reason
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        self._components = self._extensions = None
        import logging  # not at import time: llmos --help stays fast

        logging.getLogger("llmos.plugins").warning("plugin %s is broken: %s", info.name, reason)
        if self._trace and exc is not None:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        if _strict():
            raise PluginError(f"plugin {info.name!r} is broken: {reason}") from exc

    # -- calling hooks -----------------------------------------------------------

    def _impls(self, hook_name: str) -> list[Any]:
        hook = getattr(self.pm.hook, hook_name)
        # sorted by plugin name: results never depend on registration order
        return sorted(
            (i for i in hook.get_hookimpls() if not (i.hookwrapper or i.wrapper)),
            key=lambda i: i.plugin_name,
        )

    def _enabled_impls(self, hook_name: str) -> Iterator[tuple[Any, PluginInfo | None]]:
        """``(implementation, its plugin's info)`` of the plugins not broken or disabled."""
        for impl in self._impls(hook_name):
            info = self.plugins.get(impl.plugin_name)
            if info is None or info.status == OK:
                yield impl, info

    def call_each(self, hook_name: str, per_plugin_kwargs: Any = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` on its own, isolating failures.

        :param per_plugin_kwargs: optional ``fn(plugin_name) -> dict`` of extra
            arguments for each plugin (used to hand out attributed callbacks).
        :returns: ``[(plugin_name, result)]`` for implementations that did not raise.
        """
        results = []
        for impl, info in self._enabled_impls(hook_name):
            args = dict(kwargs)
            if per_plugin_kwargs is not None:
                args.update(per_plugin_kwargs(impl.plugin_name))
            try:
                call_args = {a: args[a] for a in impl.argnames}
            except KeyError as exc:
                self._mark_broken(info or PluginInfo(impl.plugin_name), f"{hook_name}: unknown argument {exc}")
                continue
            if self._trace:
                print(f"llmos: {impl.plugin_name}.{hook_name}({', '.join(call_args)})", file=sys.stderr)
            try:
                result = impl.function(**call_args)
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                if info is not None:
                    self._mark_broken(info, f"{hook_name} raised {_exc_line(exc)}", exc)
                continue
            results.append((impl.plugin_name, result))
        return results

    def first_result(self, hook_name: str, **kwargs: Any) -> tuple[str, Any] | None:
        """Ask a *service* hook: enabled plugins in name order, the first result that is
        not ``None`` as ``(plugin_name, result)``. Unlike :meth:`call_each`, a plugin's
        exception reaches the caller (a service's errors are the caller's to show)."""
        for impl, _info in self._enabled_impls(hook_name):
            result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            if result is not None:
                return impl.plugin_name, result
        return None

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every plugin; a plugin that raises is marked
        broken and skipped from then on, and the caller never sees the error."""
        self.call_each(hook_name, **kwargs)

    # -- components --------------------------------------------------------------

    def components(self, stage: str | None = None) -> list[Component]:
        """Every component from every working plugin (optionally of one stage)."""
        if self._components is None:
            self._collect()
        comps = self._components or []
        if stage is not None:
            if stage not in STAGES:
                raise ValidationError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
            comps = [c for c in comps if c.stage == stage]
        return comps

    def extensions(self, kind: str | None = None) -> list[Extension]:
        """Every extension (optimizer, architecture, loader...) from every working
        plugin, optionally of one kind (see :data:`llmos.components.EXTENSION_KINDS`)."""
        if self._extensions is None:
            self._collect()
        exts = self._extensions or []
        if kind is not None:
            _check_kind(kind)
            exts = [e for e in exts if e.kind == kind]
        return exts

    def get_extension(self, kind: str, name: str) -> Extension:
        """The extension of ``kind`` called ``name`` (or ``"plugin:name"`` to choose
        between two plugins providing the same name).

        :raises NotFoundError: no such extension (the message lists the available names).
        :raises ConflictError: two plugins provide ``name`` and no plugin was named
            (the message names both).
        """
        _check_kind(kind)
        plugin, sep, bare = str(name).strip().rpartition(":")
        plugin = plugin if sep else None
        available = self.extensions(kind)
        matches = [e for e in available if e.name == bare and (plugin is None or e.plugin == plugin)]
        if not matches:
            names = sorted({e.name if [x.name for x in available].count(e.name) == 1 else e.qualified_ref
                            for e in available})
            hint = _broken_hint(self.plugins.values())
            raise NotFoundError(
                f"no {kind[:-1].replace('_', ' ')} named {name!r} (available {kind}: {', '.join(names) or 'none'}; "
                f"a plugin adds one with the {EXTENSION_HOOKS[kind]} hook){hint}"
            )
        if len(matches) > 1:
            both = " and ".join(repr(e.plugin) for e in matches)
            raise ConflictError(
                f"{kind[:-1].replace('_', ' ')} {bare!r} is provided by plugins {both}: name one, e.g. "
                f"'{matches[0].qualified_ref}'"
            )
        return matches[0]

    def _collect(self) -> None:
        found: list[Component] = []
        kinds = [(stage, STAGE_HOOKS[stage], Component) for stage in STAGES]
        kinds += [(kind, EXTENSION_HOOKS[kind], Extension) for kind in EXTENSION_KINDS]
        for kind, hook, cls in kinds:
            registrars: dict[str, _Registrar] = {}

            def kw(plugin: str, kind: str = kind, cls: type = cls) -> dict[str, Any]:
                registrars[plugin] = _Registrar(plugin, kind, cls)
                return {"register": registrars[plugin]}

            ok_plugins = {p for p, _ in self.call_each(hook, per_plugin_kwargs=kw)}
            for plugin in sorted(ok_plugins):
                reg = registrars[plugin]
                if reg.error:
                    info = self.plugins.get(plugin)
                    if info is not None:
                        self._mark_broken(info, reg.error)
                    continue
                found.extend(reg.components)
        # a plugin marked broken by a later hook loses what it registered earlier too
        ok = [c for c in found if self.plugins.get(c.plugin, PluginInfo(c.plugin)).status == OK]
        self._components = [c for c in ok if not isinstance(c, Extension)]
        self._extensions = [c for c in ok if isinstance(c, Extension)]

    def get_component(self, ref: str | ComponentRef) -> Component:
        """Find a component by reference (``stage.name`` or ``plugin:stage.name``).

        :raises NotFoundError: no such component (the message lists what exists).
        :raises ConflictError: two plugins provide it and no plugin was named.
        """
        cref = ComponentRef.parse(ref) if isinstance(ref, str) else ref
        matches = [c for c in self.components(cref.stage) if c.name == cref.name]
        if cref.plugin is not None:
            matches = [c for c in matches if c.plugin == cref.plugin]
        if not matches:
            available = ", ".join(c.ref for c in self.components(cref.stage)) or "none"
            hint = _broken_hint(self.plugins.values())
            raise NotFoundError(
                f"no component {cref} (available in stage {cref.stage}: {available}){hint}"
            )
        if len(matches) > 1:
            both = " and ".join(repr(c.plugin) for c in matches)
            raise ConflictError(
                f"component {cref} is provided by plugins {both}: name one, e.g. "
                f"'{matches[0].qualified_ref}'"
            )
        return matches[0]

    # -- enable / disable ----------------------------------------------------------

    def info(self, name: str) -> PluginInfo:
        if name not in self.plugins:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise NotFoundError(f"no plugin named {name!r} (installed: {known})")
        return self.plugins[name]

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Persist ``name`` as enabled/disabled (takes effect for new processes)."""
        self.info(name)  # must exist
        settings = load_settings()
        disabled = set(settings.get("disabled", []))
        if enabled:
            disabled.discard(name)
        else:
            disabled.add(name)
        settings["disabled"] = sorted(disabled)
        save_settings(settings)


class _Registrar:
    """The ``register`` callback handed to one plugin for one stage or extension kind."""

    def __init__(self, plugin: str, stage: str, cls: type = Component) -> None:
        self.plugin, self.stage, self.cls = plugin, stage, cls
        self.components: list[Component] = []
        self.error: str | None = None

    def __call__(self, name: str, factory: Any, *, config: Any = None, description: str = "",
                 **extra: Any) -> None:
        problem = None
        what = "component" if self.cls is Component else self.stage[:-1].replace("_", " ")
        allowed = {"presets"} if self.stage == "architectures" else set()
        if not isinstance(name, str) or not NAME_RE.match(name):
            problem = f"invalid {what} name {name!r} (use lowercase letters, digits, '-' and '_')"
        elif not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            problem = f"{what} {name!r}: factory must be callable or 'module:attr', got {factory!r}"
        elif config is not None and not hasattr(config, "model_validate"):
            problem = f"{what} {name!r}: config must be a pydantic model class, got {config!r}"
        elif set(extra) - allowed:
            problem = f"{what} {name!r}: unknown register() argument(s) {', '.join(sorted(set(extra) - allowed))}"
        elif "presets" in extra and not (
            isinstance(extra["presets"], dict)
            and all(isinstance(k, str) and NAME_RE.match(k) and isinstance(v, dict) for k, v in extra["presets"].items())
        ):
            problem = f"{what} {name!r}: presets must map preset names to dicts of config fields"
        elif any(c.name == name for c in self.components):
            problem = f"{what} {self.stage}.{name} registered twice"
        if problem:
            self.error = self.error or problem
            return
        lines = (description or "").strip().splitlines()
        comp = self.cls(self.stage, name, factory, config, lines[0] if lines else "", self.plugin)
        if extra:
            comp.extra = dict(extra)
        self.components.append(comp)



def _check_kind(kind: str) -> None:
    if kind not in EXTENSION_HOOKS:
        raise ValidationError(f"unknown extension kind {kind!r}: use one of {', '.join(EXTENSION_KINDS)}")


def _broken_hint(infos: Iterable[PluginInfo]) -> str:
    bad = [i.name for i in infos if i.status in (BROKEN, INCOMPATIBLE)]
    return f"; broken plugins: {', '.join(bad)} (see llmos plugin list)" if bad else ""


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager (created and loaded on first use)."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def set_manager(manager: PluginManager | None) -> PluginManager | None:
    """Replace the process-wide manager (tests); returns the previous one."""
    global _manager
    previous, _manager = _manager, manager
    return previous
