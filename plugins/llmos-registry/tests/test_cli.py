"""``llmos model ...`` and ``llmos db ...`` through click's runner, and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from registry_testtools import make_model, tree_bytes

from llmos.cli import main


def run(*args: str, ok: bool = True, input: str | None = None) -> Any:
    r = CliRunner().invoke(main, list(args), input=input)
    if ok:
        assert r.exit_code == 0, (r.output, r.exception)
    return r


@pytest.fixture
def cli_home(llmos_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMOS_PLUGINS", "llmos-registry")
    yield llmos_home
    from llmos_registry.db import dispose_engines

    dispose_engines()


def test_model_workflow(cli_home: Path, tmp_path: Path) -> None:
    a = make_model(tmp_path / "a", [1, 2, 3])
    b = make_model(tmp_path / "b", [1, 2, 4])
    r = run("model", "register", "tiny", str(a), "--tag", "stage=fp32", "--metric", "val_ppl=41.2", "-d", "first")
    assert r.output.startswith("Registered tiny:1 (3 files")
    r = run("model", "register", "tiny", str(b), "--parent", "tiny:1", "--alias", "canary", "--metric", "val_ppl=40",
            "--json")
    v2 = json.loads(r.output)
    assert v2["ref"] == "tiny:2" and v2["parents"] == ["tiny:1"] and v2["aliases"] == ["canary"]
    assert v2["stored_bytes"] == 64 * 4  # only the changed tensor is stored again

    models = json.loads(run("model", "list", "--json").output)
    assert [(m["name"], m["versions"], m["latest"], m["aliases"]) for m in models] == [("tiny", 2, 2, {"canary": 2})]
    assert "tiny" in run("model", "list").output

    shown = json.loads(run("model", "show", "tiny@canary", "--json").output)
    assert shown["number"] == 2 and shown["metrics"] == {"val_ppl": 40.0}
    text = run("model", "show", "tiny:1").output
    assert "tiny:1" in text and "val_ppl=41.2" in text and "stage=fp32" in text and "model.safetensors" in text

    run("model", "alias", "set", "tiny", "production", "1")
    assert json.loads(run("model", "show", "tiny@production", "--json").output)["number"] == 1
    vers = json.loads(run("model", "versions", "tiny", "--json").output)
    assert [(v["number"], v["aliases"]) for v in vers] == [(1, ["production"]), (2, ["canary"])]
    assert "production" in run("model", "versions", "tiny").output

    assert "stage=int8" in run("model", "tag", "tiny:2", "stage=int8").output
    assert json.loads(run("model", "metrics", "tiny:2", "--set", "tok_s=812", "--json").output) == {
        "val_ppl": 40.0, "tok_s": 812.0}
    assert "tok_s" in run("model", "metrics", "tiny:2").output

    lineage = run("model", "lineage", "tiny:2").output
    assert lineage.index("tiny:2") < lineage.index("tiny:1")
    assert json.loads(run("model", "lineage", "tiny:2", "--json").output)["parents"][0]["ref"] == "tiny:1"

    diff = run("model", "diff", "tiny:1", "tiny:2").output
    assert "1 changed, 0 added, 0 removed, 2 unchanged" in diff and "layer2" in diff and "val_ppl" in diff
    d = json.loads(run("model", "diff", "tiny:1", "tiny:2", "--json").output)
    assert d["metrics"]["val_ppl"]["delta"] == pytest.approx(-1.2)

    run("model", "export", "tiny@production", str(tmp_path / "out"))
    assert tree_bytes(tmp_path / "out") == tree_bytes(a)

    run("model", "alias", "remove", "tiny", "canary")
    assert "Archived tiny:1" in run("model", "archive", "tiny:1").output
    r = run("model", "delete", "tiny:2", input="n\n", ok=False)
    assert r.exit_code == 1 and json.loads(run("model", "show", "tiny:2", "--json").output)["status"] == "ready"
    assert "Deleted tiny:2" in run("model", "delete", "tiny:2", "--yes").output
    gc = json.loads(run("model", "gc", "--grace-seconds", "0", "--json").output)
    assert gc["removed_blobs"] == 1
    assert json.loads(run("model", "fsck", "--json").output)["ok"] is True
    assert "0 missing, 0 corrupt" in run("model", "fsck").output

    info = json.loads(run("db", "info", "--json").output)
    assert info["revision"] == info["head"] and info["counts"]["model_versions"] == 2
    assert "up to date" in run("db", "upgrade").output


@pytest.mark.parametrize(
    "args, message",
    [
        (["model", "show", "ghost"], "Error: no model named 'ghost' (see: llmos model list)"),
        (["model", "show", "bad ref"], "Error: invalid model reference"),
        (["model", "register", "x", "/nonexistent/dir"], "Error: /nonexistent/dir does not exist"),
        (["model", "register", "x", ".", "--tag", "novalue"], "Error: bad tag 'novalue': write KEY=VALUE"),
        (["model", "register", "x", ".", "--metric", "a=b"], "Error: metric 'a' must be a number"),
        (["model", "alias", "set", "ghost", "prod", "1"], "Error: no model named 'ghost'"),
        (["model", "tag", "ghost"], "Error: nothing to do"),
        (["model", "export", "ghost", "/tmp/x"], "Error: no model named 'ghost'"),
    ],
)
def test_errors_are_one_line(cli_home: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr


def test_fsck_exit_status_on_corruption(cli_home: Path, tmp_path: Path) -> None:
    run("model", "register", "c", str(make_model(tmp_path / "a", [1])))
    blob = sorted(p for p in (cli_home / "blobs" / "sha256").rglob("*") if p.is_file())[0]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"bitrot")
    r = run("model", "fsck", ok=False)
    assert r.exit_code == 1 and "1 corrupt" in r.output


def test_plugins_can_add_model_subcommands(cli_home: Path, plugin_manager: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from llmos import hookimpl
    from llmos.cli import CORE_COMMANDS, RootGroup
    from llmos_registry.cli.model import model

    class Compare:
        LLMOS_API = 2

        @staticmethod
        @hookimpl
        def llmos_register_commands(cli: Any) -> None:
            from llmos_registry.cli.model import model as model_group

            @click.command("compare")
            @click.argument("a")
            def compare(a: str) -> None:
                """Compare versions (test plugin)."""
                click.echo(f"comparing {a}")

            model_group.add_command(compare)

    plugin_manager.register(Compare(), name="compare-plugin")
    monkeypatch.setattr(model, "commands", dict(model.commands))  # undo the plugin's addition afterwards
    root = RootGroup(name="llmos", lazy=dict(CORE_COMMANDS))
    r = CliRunner().invoke(root, ["model", "compare", "tiny:1"])
    assert r.exit_code == 0 and r.output == "comparing tiny:1\n"
    assert "compare" in CliRunner().invoke(root, ["model", "--help"]).output


def test_real_process_and_light_import(tmp_path: Path) -> None:
    env = dict(os.environ, LLMOS_HOME=str(tmp_path / "home"), LLMOS_PLUGINS="llmos-registry")
    env.pop("LLMOS_DATABASE_URL", None)
    src = make_model(tmp_path / "m", [1])
    cp = subprocess.run([sys.executable, "-m", "llmos", "model", "register", "proc", str(src), "--json"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert cp.returncode == 0, cp.stderr
    assert json.loads(cp.stdout)["ref"] == "proc:1"
    cp = subprocess.run([sys.executable, "-m", "llmos", "model", "show", "proc:9"], capture_output=True, text=True,
                        env=env, timeout=120)
    assert cp.returncode == 2 and cp.stderr.strip() == "Error: model 'proc' has no version 9 (see: llmos model versions proc)"
    probe = (
        "import sys\nfrom llmos.cli import main\n"
        "try:\n    main(['model', '--help'], prog_name='llmos')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('sqlalchemy', 'alembic', 'torch', 'numpy') if m in sys.modules), file=sys.stderr)\n"
    )
    cp = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert cp.stderr.strip().splitlines()[-1] == "[]"
