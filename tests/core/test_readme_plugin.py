"""The plugin in the README, built and installed with pip exactly as written there,
loads, shows in `llmos plugin list`, and its component shows in `llmos components`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _block(readme: str, first_line: str) -> str:
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", readme, re.S):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"README has no code block starting with {first_line!r}")


def test_readme_plugin_builds_loads_and_runs(tmp_path, llmos_cli, dists):
    readme = (ROOT / "README.md").read_text()
    src = tmp_path / "src"
    src.mkdir()
    (src / "pyproject.toml").write_text(_block(readme, "# pyproject.toml"))
    (src / "llmos_shout.py").write_text(_block(readme, "# llmos_shout.py"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(dists.path), str(src)],
        check=True, capture_output=True, timeout=300,
    )
    env = {"LLMOS_PLUGINS": "llmos-shout"}
    plugins = json.loads(llmos_cli("plugin", "list", "--json", env=env).stdout)
    assert [(p["name"], p["status"], p["version"]) for p in plugins] == [("llmos-shout", "ok", "0.1.0")]
    comps = json.loads(llmos_cli("components", "--json", env=env).stdout)
    assert [c["ref"] for c in comps] == ["data.shout"]
    assert "llmos-shout" in llmos_cli("plugin", "list", env=env).stdout

    corpus = tmp_path / "c.txt"
    corpus.write_text("hello\nworld\n")
    code = (
        "from llmos.plugins import get_manager\n"
        "from llmos.context import RunContext\n"
        "import pathlib, json\n"
        f"step = get_manager().get_component('data.shout').create({{'path': {str(corpus)!r}}})\n"
        "ctx = RunContext(run_id=None, spec=None, workdir=pathlib.Path('.'))\n"
        "print(json.dumps([step.run(ctx), ctx.artifacts['text_lines']]))\n"
    )
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                        env={**__import__("os").environ, "PYTHONPATH": str(dists.path), **env})
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout) == [{"lines": 2}, ["HELLO\n", "WORLD\n"]]
