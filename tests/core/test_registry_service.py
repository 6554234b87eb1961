"""The registry as a service (``llmos_open_registry``): the core asks plugins in name
order for the first answer, a backend's errors reach the caller, and a process with no
registry plugin gets one line saying how to get one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmos import hookimpl


class FakeBackend:
    """Serves only ``fake://`` URLs; refuses ``fake://down`` like an unreachable server."""

    LLMOS_API = 2

    def __init__(self) -> None:
        self.opened: list[tuple[Any, ...]] = []

    @hookimpl
    def llmos_open_registry(self, url, home, notify):
        if not (url or "").startswith("fake://"):
            return None
        if url == "fake://down":
            from llmos.errors import LlmosError

            raise LlmosError("cannot reach fake://down")
        self.opened.append((url, home, notify))
        return ("fake registry", url)


def test_hook_open_registry_first_answer_wins_and_errors_reach_the_caller(plugin_manager, tmp_path: Path) -> None:
    from llmos.errors import LlmosError
    from llmos.registry import open_registry

    fake = FakeBackend()
    plugin_manager.register(fake, name="a-fake")  # asked before llmos-registry (name order)
    assert plugin_manager.info("a-fake").hooks == ["llmos_open_registry"]

    def notify(hook: str, **kwargs: Any) -> None:
        pass

    assert open_registry("fake://x", tmp_path, notify=notify) == ("fake registry", "fake://x")
    assert fake.opened == [("fake://x", tmp_path, notify)]
    with pytest.raises(LlmosError, match="^cannot reach fake://down$"):
        open_registry("fake://down")
    real = open_registry()  # not a fake:// URL: the fake says None, the standard plugin answers
    assert real.list_models() == []


def test_no_registry_plugin_is_one_clear_error(llmos_home: Path, monkeypatch) -> None:
    from llmos.errors import LlmosError
    from llmos.plugins import PluginManager, set_manager
    from llmos.registry import open_registry

    previous = set_manager(PluginManager(load_entrypoints=False))
    try:
        with pytest.raises(LlmosError, match=r"^no plugin opens a registry: install the standard registry plugin "
                                             r"\(pip install llmos-registry\)"):
            open_registry()
        monkeypatch.setenv("LLMOS_PLUGINS", "llmos-data")
        with pytest.raises(LlmosError, match="LLMOS_PLUGINS='llmos-data' leaves the registry plugin out: "
                                             "add llmos-registry to it$"):
            open_registry()
    finally:
        set_manager(previous)


def test_cli_without_the_registry_plugin_says_how_to_fix_it(tmp_path: Path) -> None:
    """Regression (the registry became a plugin): `llmos runs list` with an allow-list that
    leaves it out is a one-line error and exit 1, not a traceback."""
    env = dict(os.environ, LLMOS_HOME=str(tmp_path), LLMOS_PLUGINS="llmos-data")
    env.pop("LLMOS_DATABASE_URL", None)
    cp = subprocess.run([sys.executable, "-m", "llmos", "runs", "list"], capture_output=True, text=True, env=env,
                        timeout=120)
    assert cp.returncode == 1
    assert cp.stderr.strip().splitlines() == [
        "Error: no plugin opens a registry: LLMOS_PLUGINS='llmos-data' leaves the registry plugin out: "
        "add llmos-registry to it"]
    assert not (tmp_path / "llmos.db").exists()  # nothing was created
