"""Fixtures for the pipeline tests: a manager with the toy steps plugin and a recorder."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def _load_steps_plugin() -> Any:
    spec = importlib.util.spec_from_file_location("llmos_test_steps_plugin", HERE / "steps_plugin.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def steps(plugin_manager) -> Any:
    """The toy steps plugin registered (as ``toy``) with a ``Recorder`` (as ``recorder``)."""
    mod = _load_steps_plugin()
    plugin_manager.register(mod, name="toy")
    recorder = mod.Recorder()
    plugin_manager.register(recorder, name="recorder")
    mod.recorder = recorder
    mod.manager = plugin_manager
    return mod


@pytest.fixture
def toy_file(tmp_path: Path, steps: Any) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(steps.PIPELINE)
    return path


@pytest.fixture
def registry(llmos_home: Path) -> Any:
    from llmos.registry import open_registry

    return open_registry()
