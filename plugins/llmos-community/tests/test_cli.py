"""The community commands: help that teaches, JSON output, light imports, key files."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from community_helpers import llmos

REPO = Path(__file__).resolve().parents[3]


def test_cli_modules_import_only_click():
    code = ("import sys, llmos_community.plugin, llmos_community.cli.index, llmos_community.cli.contrib, "
            "llmos_community.cli.plugin, llmos.cli.plugin_cmds\n"
            "heavy = [m for m in ('pydantic', 'cryptography', 'sqlalchemy', 'torch', 'packaging.version', "
            "'tomli_w', 'rich') if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_commands_with_examples():
    out = llmos("--help", check=True).stdout
    assert "index" in out and "contrib" in out
    assert "install" in llmos("plugin", "--help", check=True).stdout  # added to the core group
    for args in (["index", "check"], ["contrib", "submit"], ["plugin", "install"], ["plugin", "new"]):
        text = llmos(*args, "--help", check=True).stdout
        assert "Example" in text, args


def test_search_the_real_index(llmos_home):
    out = llmos("plugin", "search", "--stage", "compression", "--json", cwd=REPO, check=True)
    hits = json.loads(out.stdout)
    assert [h["name"] for h in hits] == ["llmos-compress"] and hits[0]["latest"] == "0.2.0"
    assert "No plugin" in llmos("plugin", "search", "zzz-nothing", cwd=REPO, check=True).stdout


def test_hook_after_plugin_info_shows_index_state(llmos_home):
    """llmos-community's llmos_after_plugin_info adds the index entry to `llmos plugin info`."""
    out = llmos("plugin", "info", "llmos-data", "--json", cwd=REPO,
                extra_env={"LLMOS_PLUGINS": "llmos-data,llmos-community,llmos-registry"}, check=True)
    data = json.loads(out.stdout)
    assert data["index"]["latest"] == "0.2.0" and data["index"]["origin"] == "in-tree"
    # an in-tree entry is maintained by the core maintainers of maintainers.toml (no key of its own)
    assert "index-founder-1" in data["index"]["maintainers"]


def test_keygen_writes_private_key_0600_and_refuses_overwrite(llmos_home):
    out = llmos("contrib", "keygen", "--handle", "erin", check=True)
    assert len(out.stdout.strip()) == 44  # 32 bytes, base64
    key = llmos_home / "keys" / "erin.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    again = llmos("contrib", "keygen", "--handle", "erin")
    assert again.returncode != 0 and again.stderr.startswith("Error: ") and "--force" in again.stderr
    key.chmod(0o644)
    from llmos_community import signing

    try:
        signing.load_private_key("erin")
    except Exception as exc:  # noqa: BLE001
        assert "chmod 600" in str(exc)
    else:
        raise AssertionError("a world-readable key was accepted")


def test_check_missing_base_ref_is_one_clear_line(tmp_path):
    out = llmos("index", "check", str(REPO / "registry"), "--base", "no-such-ref-xyz", cwd=REPO)
    assert out.returncode != 0 and out.stderr.strip().startswith("Error: ") and "no-such-ref-xyz" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_install_unknown_plugin(llmos_home):
    out = llmos("plugin", "install", "llmos-does-not-exist", "--index", str(REPO / "registry"))
    assert out.returncode != 0 and "no plugin named" in out.stderr and "llmos plugin search" in out.stderr
