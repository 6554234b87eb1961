"""``llmos plugin new`` makes a project whose generated tests pass, for every stage;
``llmos plugin test`` checks any plugin directory."""

from __future__ import annotations

import subprocess
import sys

import pytest
from community_helpers import llmos

from llmos_community.scaffold import STAGE_COMPONENTS, scaffold
from llmos.errors import ConflictError, ValidationError


def test_every_stage_scaffold_passes_its_own_tests(tmp_path):
    import os

    projects = {}
    for stage in STAGE_COMPONENTS:
        project = scaffold(f"llmos-demo-{stage}", stage, tmp_path)
        assert (project / "LICENSE").exists() and (project / "README.md").exists()
        hook = (project / "src" / f"llmos_demo_{stage}" / "plugin.py").read_text()
        assert "LLMOS_API = 2" in hook and "import torch" not in hook
        projects[stage] = project
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("LLMOS_PLUGINS", None)
    # as a plugin author runs them: `pytest` inside the project (its pyproject sets pythonpath)
    # (its tiny-pipeline test runs below with the others)
    data = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "not tiny_pipeline"], cwd=projects["data"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert data.returncode == 0 and "3 passed" in data.stdout, data.stdout[-2000:]
    # all six stages' generated tests in one interpreter (one torch import on a busy CI machine)
    env["PYTHONPATH"] = os.pathsep.join(str(p / "src") for p in projects.values())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--import-mode=importlib", "-p", "no:cacheprovider",
                           *(str(p / "tests") for p in projects.values())], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0 and f"{4 * len(projects)} passed" in proc.stdout, proc.stdout[-3000:]


def test_plugin_test_command(tmp_path):
    project = scaffold("llmos-checked", "monitoring", tmp_path)
    out = llmos("plugin", "test", str(project), "--json", check=True)
    assert '"ok": true' in out.stdout
    hook = project / "src" / "llmos_checked" / "plugin.py"
    hook.write_text(hook.read_text().replace("LLMOS_API = 2", "LLMOS_API = 7"))
    out = llmos("plugin", "test", str(project))
    assert out.returncode == 1 and "LLMOS_API = 7 is not supported" in out.stdout


def test_bad_names_and_existing_directory(tmp_path):
    with pytest.raises(ValidationError, match="standard-library"):
        scaffold("asyncio", "data", tmp_path)
    with pytest.raises(ValidationError, match="valid distribution name"):
        scaffold("-bad-", "data", tmp_path)
    with pytest.raises(ValidationError, match="unknown stage"):
        scaffold("llmos-x", "cooking", tmp_path)
    scaffold("llmos-x", "data", tmp_path)
    with pytest.raises(ConflictError, match="already exists"):
        scaffold("llmos-x", "data", tmp_path)
    out = llmos("plugin", "new", "llmos-x", "--stage", "data", "--dir", str(tmp_path))
    assert out.returncode != 0 and out.stderr.startswith("Error: ") and "Traceback" not in out.stderr


def test_plugin_test_fails_a_hook_module_that_imports_heavy_libraries(tmp_path):
    """`llmos plugin test` refuses a hook module importing torch, numpy or transformers at
    import time (llmos --help imports every hook module); the same import inside a
    function is fine."""
    project = scaffold("llmos-heavy", "data", tmp_path)
    hook = project / "src" / "llmos_heavy" / "plugin.py"
    light = hook.read_text()
    assert "OK" in llmos("plugin", "test", str(project), check=True).stdout
    for lib in ("numpy", "torch"):
        hook.write_text(light.replace("from llmos import hookimpl", f"import {lib}\nfrom llmos import hookimpl"))
        out = llmos("plugin", "test", str(project))
        import re

        assert out.returncode == 1 and re.search(rf"hook module imports [a-z, ]*\b{lib}\b[a-z, ]* at import time",
                                                 out.stdout), out.stdout
    hook.write_text(light + "\n\ndef later():\n    import torch\n    return torch\n")
    assert "OK" in llmos("plugin", "test", str(project), check=True).stdout


def test_sink_kind_scaffold(tmp_path):
    """`llmos plugin new --kind sink` writes a sink (lifecycle hooks, not a stage); its own
    generated test (the standard tiny pipeline with it, seeing its metrics) runs in
    test_scaffold_kinds.py with the other kinds' tests."""
    out = llmos("plugin", "new", "llmos-my-sink", "--kind", "sink", "--dir", str(tmp_path), check=True)
    project = tmp_path / "llmos-my-sink"
    assert "Created" in out.stdout and (project / "tests" / "tiny.toml").exists()
    hook = (project / "src" / "llmos_my_sink" / "plugin.py").read_text()
    assert "def llmos_after_train_step" in hook and "register" not in hook
    assert (project / "src" / "llmos_my_sink" / "sink.py").exists()
    assert "OK" in llmos("plugin", "test", str(project), check=True).stdout


def test_scaffold_ships_the_standard_tiny_pipeline():
    from pathlib import Path

    from llmos_community.scaffold import template

    repo = Path(__file__).resolve().parents[3]
    assert template("templates/tiny.toml") == (repo / "pipelines" / "tiny.toml").read_text(), \
        "copy pipelines/tiny.toml to plugins/llmos-community/llmos_community/templates/tiny.toml"


def test_unknown_kind_and_missing_stage_are_refused_in_one_line(tmp_path):
    with pytest.raises(ValidationError, match="unknown kind 'cooking': use one of stage, sink, optimizer"):
        scaffold("llmos-x", None, tmp_path, kind="cooking")
    out = llmos("plugin", "new", "llmos-lion", "--kind", "cooking", "--dir", str(tmp_path))
    assert out.returncode != 0 and "Traceback" not in out.stderr and "'cooking' is not one of" in out.stderr
    out = llmos("plugin", "new", "llmos-x", "--dir", str(tmp_path))
    assert out.returncode != 0 and "--kind stage needs --stage" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
