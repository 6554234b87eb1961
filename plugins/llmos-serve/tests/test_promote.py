"""Promotion a version must earn (issue 16.2): `llmos deploy promote --require RULE` and
the `deployment.promote` pipeline stage. A refused promotion names both numbers, exits
non-zero and leaves the alias where it was; every decision is a registry event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from llmos import hookimpl
from llmos.cli import main

RULE = "val_ppl <= current.val_ppl"


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _version(reg: Any, tmp: Path, name: str, ppl: float, width: int = 4) -> str:
    import numpy as np
    from safetensors.numpy import save_file

    d = tmp / f"{name}-{ppl}-{width}"
    d.mkdir()
    save_file({"w": np.full((width, 4), ppl, dtype=np.float32)}, str(d / "model.safetensors"))
    return reg.register_version(name, d, metrics={"val_ppl": ppl, "docstrings/acc": 0.5}).ref


@pytest.fixture
def reg(standard_plugins: Any) -> Any:
    from llmos.registry import open_registry

    standard_plugins("llmos-serve")
    return open_registry()


def test_promote_requires_the_rule_and_records_every_decision(reg: Any, tmp_path: Path) -> None:
    good = _version(reg, tmp_path, "tiny", 88.0)
    smoke = _version(reg, tmp_path, "tiny", 601.0)
    better = _version(reg, tmp_path, "tiny", 80.5, width=8)

    r = cli("deploy", "promote", good, "--require", RULE)  # no production yet: the first promotes
    assert r.exit_code == 0, r.output
    assert reg.resolve("tiny@production").ref == good

    r = cli("deploy", "promote", smoke, "--require", RULE)  # the 20-step smoke run of the issue
    assert r.exit_code == 3, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1 and "601" in line and "88" in line and "fails" in line
    assert "tiny@production stays at version 1" in line
    assert reg.resolve("tiny@production").ref == good  # unchanged

    r = cli("deploy", "promote", better, "--json", "--require",
            "val_ppl <= current.val_ppl and size_bytes <= current.size_bytes * 2, params < 100 "
            "and docstrings/acc >= current.docstrings/acc - 0.01")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["promoted"] is True and reg.resolve("tiny@production").ref == better

    refused = reg.events(kind="deploy.refused", subject=smoke)
    assert len(refused) == 1
    data = refused[0]["data"]
    assert data["metrics"]["candidate"]["val_ppl"] == 601.0 and data["metrics"]["current"]["val_ppl"] == 88.0
    assert (data["rule"], data["alias"], data["current"]) == (RULE, "production", good)
    promoted = reg.events(kind="deploy.promoted")
    assert [e["subject"] for e in promoted] == [better, good]
    assert promoted[0]["data"]["metrics"]["candidate"]["params"] == 32.0
    assert promoted[1]["data"]["metrics"]["current"] is None  # the first one had nothing to beat


def test_bad_rules_are_one_line_errors_and_never_run_code(reg: Any, tmp_path: Path) -> None:
    ref = _version(reg, tmp_path, "tiny", 50.0)
    for rule, words in (("val_ppl <=", "ends too early"), ("val_ppl", "ends too early"), ("val_ppl + 1", "ends too early"),
                        ("val_ppl and 3", "expected a comparison"),
                        ("__import__('os').system('touch pwned') == 0", "cannot read"),
                        ("val_ppl <= current.val_ppl;", "cannot read"), ("", "empty"),
                        ("bleu >= 0.3", "tiny:1 has no metric 'bleu' (it has: docstrings/acc, params, size_bytes, "
                                        "val_ppl)")):
        r = cli("deploy", "promote", ref, "--require", rule)
        assert r.exit_code == 2, (rule, r.output)
        assert words in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not Path("pwned").exists()
    with pytest.raises(Exception):
        reg.resolve("tiny@production")  # nothing moved


class _FakeRegisterConfig(BaseModel):
    val_ppl: float = 100.0


class _FakeRegister:
    """Registers a version with the val_ppl it is told (a training run, minus the training)."""

    def __init__(self, config: _FakeRegisterConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        import numpy as np
        from safetensors.numpy import save_file

        from llmos.artifacts import MODEL_VERSION

        out = Path(ctx.workdir) / "model"
        out.mkdir(exist_ok=True)
        save_file({"w": np.full((2, 2), self.config.val_ppl, dtype=np.float32)}, str(out / "model.safetensors"))
        v = ctx.register_version(out, metrics={"val_ppl": self.config.val_ppl})
        MODEL_VERSION.set(ctx, v.ref)
        return {"version": v.ref}


class _FakePlugin:
    LLMOS_API = 2

    @hookimpl
    def llmos_register_model_steps(self, register: Any) -> None:
        register("fake-register", _FakeRegister, config=_FakeRegisterConfig, description="registers a version")


def test_pipeline_promotes_only_when_it_beats_production(reg: Any, tmp_path: Path) -> None:
    from llmos.plugins import get_manager

    get_manager().register(_FakePlugin(), name="fake")
    pipe = tmp_path / "p.toml"
    pipe.write_text(f"""
[pipeline]
name = "gated"

[[stages]]
id = "register"
use = "model.fake-register"

[[stages]]
id = "promote"
use = "deployment.promote"
[stages.config]
to = "production"
require = "{RULE}"
""")
    for ppl, production in ((88.0, 1), (601.0, 1), (70.0, 3)):
        r = cli("run", str(pipe), "-q", "--json", "--set", f"stages.register.config.val_ppl={ppl}")
        assert r.exit_code == 0, r.output  # a refusal is an outcome, not a failed run
        out = json.loads(r.stdout)
        promoted = out["stages"][1]["result"]["promoted"]
        assert promoted is (production == len(reg.list_versions("gated"))), out["stages"][1]
        assert reg.resolve("gated@production").number == production
    assert [e["subject"] for e in reg.events(kind="deploy.refused")] == ["gated:2"]

    bad = tmp_path / "bad.toml"
    bad.write_text(pipe.read_text().replace(RULE, "val_ppl <=> 3"))
    r = cli("run", str(bad), "-q")
    assert r.exit_code == 2 and "stages[1].config.require" in r.output and "got '>'" in r.output
