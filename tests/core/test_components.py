"""Component references and config validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from llmos.components import STAGES, Component, ComponentRef
from llmos.errors import ValidationError

names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
plugins = st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(stage=st.sampled_from(STAGES), name=names, plugin=plugins)
def test_ref_round_trip(stage, name, plugin):
    ref = ComponentRef(stage, name, plugin)
    assert ComponentRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("llama", "write 'stage.name'"),
        ("models.llama", "unknown stage 'models'"),
        ("model.Llama", "write 'stage.name'"),
        ("model.", "write 'stage.name'"),
    ],
)
def test_bad_refs(text, message):
    with pytest.raises(ValidationError, match=message):
        ComponentRef.parse(text)


class Cfg(BaseModel):
    lr: float = Field(1e-3, gt=0)
    steps: int


def test_config_errors_name_every_location():
    comp = Component("optimizer", "loop", lambda c: c, Cfg, "x", "p")
    with pytest.raises(ValidationError) as err:
        comp.validate_config({"lr": -1})
    msg = err.value.message
    assert "optimizer.loop.lr: Input should be greater than 0" in msg
    assert "optimizer.loop.steps: Field required" in msg
    assert comp.create({"steps": 3}).steps == 3


def test_component_without_config_refuses_settings():
    comp = Component("data", "plain", lambda c: "made", None, "x", "p")
    assert comp.create() == "made"
    with pytest.raises(ValidationError, match="takes no settings"):
        comp.create({"x": 1})
