"""A model directory is data: its llmos.json may name only a model loader registered by
an installed plugin (llmos_register_model_loaders), never code to import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmos import hookimpl
from llmos.errors import ValidationError

STANDARD = "llmos-models,llmos-compress,llmos-export,llmos-data,llmos-train,llmos-registry"

CONFTEST = """
from pathlib import Path
Path({marker!r}).write_text("pwned")
"""


def _llmos(args, home, cwd=None):
    env = dict(os.environ, LLMOS_HOME=str(home), LLMOS_PLUGINS=STANDARD, OMP_NUM_THREADS="1")
    env.pop("LLMOS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "llmos", *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=cwd)


def _evil_copy(model_dir: Path, dst: Path, marker: Path, loader: str = "pytest:main") -> Path:
    shutil.copytree(model_dir, dst)
    meta = json.loads((dst / "llmos.json").read_text())
    meta["loader"] = loader
    (dst / "llmos.json").write_text(json.dumps(meta))
    (dst / "conftest.py").write_text(CONFTEST.format(marker=str(marker)))
    return dst


def _one_line_loader_error(cp, loader="pytest:main"):
    assert cp.returncode != 0, cp.stdout
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1, cp.stderr
    assert lines[0].startswith("Error: ") and repr(loader) in lines[0]
    assert "installed loaders: adapter, hf, int8, onnx" in lines[0] and "cannot name code" in lines[0]


def test_model_dir_naming_code_is_refused_by_register_then_generate(model_dir, tmp_path):
    """The attack: "loader": "pytest:main" with a conftest.py beside the weights."""
    marker = tmp_path / "marker"
    evil = _evil_copy(model_dir, tmp_path / "evil", marker)
    home = tmp_path / "home"
    cp = _llmos(["model", "register", "x", str(evil)], home)
    assert cp.returncode == 0, cp.stderr
    cp = _llmos(["generate", "x:1", "hi"], home, cwd=evil)
    _one_line_loader_error(cp)
    assert not marker.exists()
    # a local directory too, and the model.load step of a pipeline
    _one_line_loader_error(_llmos(["generate", str(evil), "hi"], home, cwd=evil))
    pipe = tmp_path / "p.toml"
    pipe.write_text('[pipeline]\nname = "p"\n\n[[stages]]\nuse = "model.load"\n[stages.config]\nref = "x:1"\n')
    cp = _llmos(["run", str(pipe)], home, cwd=evil)
    assert cp.returncode != 0 and "'pytest:main'" in cp.stderr and "installed loaders: adapter, hf, int8, onnx" in cp.stderr
    assert not marker.exists()


def test_legacy_module_string_only_when_it_is_a_registered_factory(model_dir, tmp_path, plugin_manager):
    from llmos_models.io import load_model, read_meta

    calls = []

    def load_doubled(path):
        calls.append(path)
        from llmos_models.io import load_hf

        return load_hf(path)

    class Loaders:
        LLMOS_API = 2

        @hookimpl
        def llmos_register_model_loaders(self, register):
            register("hf", "llmos_models.io:load_hf", description="HF")
            register("mine", load_doubled, description="a loader registered in code")

    plugin_manager.register(Loaders(), name="loaders")
    marker = tmp_path / "marker"
    d = _evil_copy(model_dir, tmp_path / "legacy", marker, loader="llmos_models.io:load_hf")
    model, tok = load_model(d)  # a legacy string equal to a registered factory: accepted
    assert model is not None and tok is not None
    for bad in ("pytest:main", "os:system", "llmos_models.io:save_model", "nope", 7, ["hf"]):
        meta = read_meta(d)
        meta["loader"] = bad
        (d / "llmos.json").write_text(json.dumps(meta))
        with pytest.raises(ValidationError, match=r"is not a model loader registered by an installed plugin "
                                                  r"\(installed loaders: hf, mine\)"):
            load_model(d)
    meta["loader"] = "mine"
    (d / "llmos.json").write_text(json.dumps(meta))
    load_model(d)
    assert calls == [d] and not marker.exists()


def test_hf_remote_code_is_refused_through_the_cli(model_dir, tmp_path):
    """config.json's auto_map names Python files beside the weights: never imported."""
    marker = tmp_path / "marker"
    d = tmp_path / "remote"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "evil.py").write_text(CONFTEST.format(marker=str(marker)))
    cp = _llmos(["generate", str(d), "hi"], tmp_path / "home", cwd=d)
    assert cp.returncode != 0 and len(cp.stderr.strip().splitlines()) == 1, cp.stderr
    assert "names custom code (auto_map: AutoConfig, AutoModelForCausalLM)" in cp.stderr
    assert not marker.exists()
