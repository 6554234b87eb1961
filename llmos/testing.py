"""pytest fixtures for plugin authors (and llmos's own tests).

Installed as a pytest plugin (entry point ``pytest11``), so any project with
llmos installed can use them::

    def test_my_plugin_registers(plugin_manager):
        import my_plugin
        plugin_manager.register(my_plugin, name="my-plugin")
        assert plugin_manager.get_component("data.my-corpus")

    def test_contract():
        import my_plugin
        from llmos.testing import check_plugin_contract
        check_plugin_contract(my_plugin)

Fixtures:

- ``llmos_home`` — a fresh, empty ``$LLMOS_HOME`` (and SQLite database) for the test.
- ``plugin_manager`` — an isolated plugin manager that loads no installed plugin but
  the registry's (those implementing ``llmos_open_registry``, e.g. llmos-registry: the
  pipeline runner records through it), made the process-wide one for the duration of
  the test.
- ``standard_plugins`` — a manager with only the named entry-point plugins (and the
  registry's) loaded: ``standard_plugins("llmos-data", "llmos-models")``.
- ``installed_plugin`` — install a plugin distribution written in the test (files plus a
  dist-info with its ``llmos`` entry point, what pip writes for a wheel) into a temporary
  site directory on ``sys.path`` and ``PYTHONPATH``, so this process and the processes it
  starts (``llmos`` subprocesses, torchrun workers) load it through its entry point:
  ``installed_plugin("llmos-lion", {"llmos_lion/__init__.py": "..."}, "llmos_lion")``.
- PostgreSQL fixtures (``postgres_url`` / ``postgres_database``: a real server started
  for the session / a fresh database on it) are opt-in, so that this pytest11 plugin,
  loaded into every pytest session wherever llmos is installed, stays small. They are
  the separate test-support distribution ``llmos-testing-postgres`` (``tests/postgres``
  in the llmos repository): ``pytest -p llmos_testing_postgres``, or
  ``pytest_plugins = ["llmos_testing_postgres"]`` in your root ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest



def check_plugin_contract(obj: Any, name: str | None = None) -> None:
    """Assert that ``obj`` satisfies the plugin contract (see :mod:`llmos.contract`)."""
    from llmos.contract import check_plugin

    problems = check_plugin(obj, name)
    assert not problems, "plugin contract violated:\n  " + "\n  ".join(problems)


@pytest.fixture
def llmos_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``$LLMOS_HOME`` with the default SQLite database inside it."""
    home = tmp_path_factory.mktemp("llmos-home")
    monkeypatch.setenv("LLMOS_HOME", str(home))
    monkeypatch.delenv("LLMOS_DATABASE_URL", raising=False)
    monkeypatch.delenv("LLMOS_PLUGINS", raising=False)
    yield home


@pytest.fixture
def plugin_manager(llmos_home: Path) -> Iterator[Any]:
    """An isolated :class:`llmos.plugins.PluginManager` with no plugins loaded."""
    from llmos.plugins import PluginManager, set_manager

    manager = PluginManager(load_entrypoints=False)
    for name, obj in registry_plugins().items():
        manager.register(obj, name=name)
    previous = set_manager(manager)
    try:
        yield manager
    finally:
        set_manager(previous)


_REGISTRY_PLUGINS: dict[str, Any] | None = None


def registry_plugins() -> dict[str, Any]:
    """``{name: hook module}`` of the installed plugins that open a registry
    (``llmos_open_registry``): the fixtures' managers keep them, since every pipeline
    run is recorded through one. Found once per process, whatever ``LLMOS_PLUGINS`` says."""
    global _REGISTRY_PLUGINS
    if _REGISTRY_PLUGINS is None:
        import os

        from llmos.plugins import PluginManager

        saved = os.environ.pop("LLMOS_PLUGINS", None)
        try:
            every = PluginManager()
        finally:
            if saved is not None:
                os.environ["LLMOS_PLUGINS"] = saved
        _REGISTRY_PLUGINS = {n: i.obj for n, i in every.plugins.items()
                             if i.status == "ok" and "llmos_open_registry" in i.hooks}
    return _REGISTRY_PLUGINS


@pytest.fixture
def standard_plugins(llmos_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Factory: ``standard_plugins("llmos-data", ...)`` → a manager that loaded only
    those entry-point plugins, installed as the process-wide manager."""
    from llmos.plugins import PluginManager, set_manager

    previous = set_manager(None)

    def make(*names: str) -> Any:
        monkeypatch.setenv("LLMOS_PLUGINS", ",".join(dict.fromkeys([*names, *registry_plugins()])))
        manager = PluginManager()
        missing = [n for n in names if n not in manager.plugins]
        assert not missing, f"plugins not installed: {missing} (run make install)"
        set_manager(manager)
        return manager

    try:
        yield make
    finally:
        set_manager(previous)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Factory: ``installed_plugin(dist, files, entry_point, version="0.1")`` → the site dir."""
    import os
    import textwrap

    site = tmp_path / "site-packages"

    def install(dist: str, files: dict[str, str], entry_point: str, version: str = "0.1") -> Path:
        for rel, text in files.items():
            path = site / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[llmos]\n{dist} = {entry_point}\n")
        (info / "RECORD").write_text("")
        if str(site) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            monkeypatch.syspath_prepend(str(site))
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        return site

    return install
