"""The contract check plugin authors run against their own plugin."""

from __future__ import annotations

import types

import pytest
from pydantic import BaseModel

from llmos import hookimpl
from llmos.contract import check_plugin
from llmos.testing import check_plugin_contract


class GoodCfg(BaseModel):
    n: int = 1


class BadDefaultCfg(BaseModel):
    n: int = "not a number"  # type: ignore[assignment]
    model_config = {"validate_default": True}


def _plugin(**hooks) -> types.SimpleNamespace:
    return types.SimpleNamespace(LLMOS_API=2, **hooks)


def test_good_plugin_passes():
    @hookimpl
    def llmos_register_data_steps(register):
        register("ok", "builtins:dict", config=GoodCfg, description="fine")

    check_plugin_contract(_plugin(llmos_register_data_steps=llmos_register_data_steps), "good")


@pytest.mark.parametrize(
    ("factory", "config", "description", "problem"),
    [
        ("no_such_module_xyz:f", GoodCfg, "d", "does not import"),
        ("builtins:dict", BadDefaultCfg, "d", "default config does not validate"),
        ("builtins:dict", GoodCfg, "", "has no description"),
    ],
)
def test_problems_are_reported(factory, config, description, problem):
    @hookimpl
    def llmos_register_data_steps(register):
        register("c", factory, config=config, description=description)

    problems = check_plugin(_plugin(llmos_register_data_steps=llmos_register_data_steps), "p")
    assert any(problem in p for p in problems), problems
    with pytest.raises(AssertionError, match="plugin contract violated"):
        check_plugin_contract(_plugin(llmos_register_data_steps=llmos_register_data_steps), "p")


def test_missing_api_and_no_hooks():
    problems = check_plugin(types.SimpleNamespace(), "empty")
    assert any("declares no LLMOS_API" in p for p in problems)
    assert any("implements no llmos_* hook" in p for p in problems)
