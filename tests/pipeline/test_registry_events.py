"""``run_pipeline(manager=M)``: the registry it opens reports version and alias events to
M (through ``open_registry(notify=M.notify)``), not to the process-wide manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos import hookimpl
from llmos.pipeline import load_pipeline, run_pipeline


class Canary:
    """A model step registering a safetensors file with the alias ``canary``."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        import numpy as np
        from safetensors.numpy import save_file

        out = Path(ctx.workdir) / "canary.safetensors"
        save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(out))
        return {"version": ctx.register_version(out, aliases=["canary"]).ref}


class Plugin:
    LLMOS_API = 2

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def llmos_register_model_steps(self, register: Any) -> None:
        register("canary", Canary, description="register with an alias")

    @hookimpl
    def llmos_after_version_registered(self, version: Any) -> None:
        self.calls.append(("registered", version.ref))

    @hookimpl
    def llmos_after_alias_moved(self, model: str, alias: str, old_version: Any, new_version: Any) -> None:
        self.calls.append(("alias", (model, alias, old_version, new_version)))


def test_run_pipeline_reports_registry_events_to_its_own_manager(llmos_home: Path, tmp_path: Path) -> None:
    from llmos.plugins import PluginManager, set_manager

    mine, bystander = PluginManager(load_entrypoints=False), PluginManager(load_entrypoints=False)
    seen, unseen = Plugin(), Plugin()
    mine.register(seen, name="seen")
    bystander.register(unseen, name="seen")
    from llmos.testing import registry_plugins

    for name, obj in registry_plugins().items():  # the process-wide manager opens the registry
        bystander.register(obj, name=name)
    toml = tmp_path / "canary.toml"
    toml.write_text('[pipeline]\nname = "canary"\n\n[[stages]]\nuse = "model.canary"\n')
    previous = set_manager(bystander)  # the process-wide manager is another one
    try:
        result = run_pipeline(load_pipeline(toml), manager=mine)
    finally:
        set_manager(previous)
    assert result.status == "completed", result.error
    assert seen.calls == [("registered", "canary:1"), ("alias", ("canary", "canary", None, 1))]
    assert unseen.calls == []
