"""GOVERNANCE.md's table names every rule the code checks; the documents show real commands."""

from __future__ import annotations

import re
from pathlib import Path

from llmos_community.check import rule_ids

REPO = Path(__file__).resolve().parents[3]


def _table_rules() -> set[str]:
    text = (REPO / "GOVERNANCE.md").read_text()
    return set(re.findall(r"^\| `([a-z0-9-]+)`", text, flags=re.M))


def test_every_checked_rule_is_in_the_governance_table():
    missing = [r for r in rule_ids() if r not in _table_rules()]
    assert not missing, f"add these rules to GOVERNANCE.md's table: {missing}"


def test_every_install_rule_is_named_in_the_code():
    src = "".join(p.read_text() for p in (REPO / "plugins" / "llmos-community" / "llmos_community").rglob("*.py"))
    for rule in sorted(r for r in _table_rules() if r.startswith(("install-", "artifact-h", "artifact-s"))):
        if rule in ("install-wheel-only", "install-atomic", "install-notice"):
            continue  # behaviours (pip's flags, install(), plugin list), tested in test_rules
        assert f"{rule}:" in src, rule


def test_contributing_commands_exist():
    from click.testing import CliRunner

    from llmos.cli import main

    text = (REPO / "CONTRIBUTING.md").read_text()
    commands = set(re.findall(r"^\s*llmos ((?:[a-z-]+ ?){1,2})", text, flags=re.M))
    assert len(commands) > 8
    runner = CliRunner()
    for cmd in commands:
        args = cmd.split()
        res = runner.invoke(main, [*args, "--help"])
        if res.exit_code != 0 and len(args) == 2:  # "llmos components" + an argument
            res = runner.invoke(main, [args[0], "--help"])
        assert res.exit_code == 0, (cmd, res.output)
