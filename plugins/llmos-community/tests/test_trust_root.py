"""The index's trust root (GOVERNANCE.md, "Standard plugins need no key" and "Keys"):

- a standard plugin is added and released with no key at all (in-tree entries verified
  by rebuilding the wheel from the recorded git tree);
- a change to maintainers.toml needs approvals by the core maintainers as of the base,
  so a pull request cannot add its own reviewers (issue 12.15);
- a maintainer's key is rotated, lost and revoked end to end through the CLI.

Every index here is a throwaway git repository; keys are TEST keys made by the tests.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

from community_helpers import git, llmos, write_maintainers

REPO = Path(__file__).resolve().parents[3]
STD = "llmos-jsonl-sink"


def _check(world_or_index: Path, base: str, *, cwd: Path, strict: bool = True, home: Path | None = None):
    args = ["index", "check", str(world_or_index), "--base", base, "--json"] + (["--strict"] if strict else [])
    out = llmos(*args, cwd=cwd, extra_env={"LLMOS_HOME": str(home)} if home else None)
    report = json.loads(out.stdout)
    return out.returncode, {p["rule"] for p in report["problems"] if p["level"] == "error"}, report


def _commit(root: Path, msg: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", msg)
    return git(root, "rev-parse", "HEAD")


# -- 12.17: standard plugins need no key ----------------------------------------------


def test_standard_plugin_added_and_released_without_any_key(tmp_path, approved, llmos_home):
    """A new plugins/<dist> gets its index entry, and a new version of it, with an empty
    $LLMOS_HOME (no key anywhere); the check rebuilds the wheel from the recorded tree.
    A tampered hash and a community entry posing as in-tree are refused."""
    root = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(root))
    write_maintainers(root / "registry", approved.pubs)  # public keys only
    base = _commit(root, "index")
    shutil.copytree(REPO / "plugins" / STD, root / "plugins" / STD,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    pyproject = root / "plugins" / STD / "pyproject.toml"  # its first release in this repository: 0.1.0
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', 'version = "0.1.0"', pyproject.read_text()))
    _commit(root, "add the plugin's code")
    wh = tmp_path / "wheelhouse"
    out = llmos("index", "release-standard", STD, "--index", str(root / "registry"), "--wheelhouse", str(wh),
                cwd=root, check=True)
    assert f"{STD} 0.1.0: new-plugin" in out.stdout
    assert not (llmos_home / "keys").exists()  # no key was made or needed
    entry = root / "registry" / "plugins" / STD
    plugin = tomllib.loads((entry / "plugin.toml").read_text())
    version = tomllib.loads((entry / "versions" / "0.1.0.toml").read_text())
    assert plugin["origin"] == "in-tree" and "maintainers" not in plugin and not (entry / "reviews").exists()
    assert version["source"]["tree"] == git(root, "rev-parse", f"HEAD:plugins/{STD}")
    assert (wh / version["artifact"]["url"]).stat().st_size == version["artifact"]["size"]
    released = _commit(root, f"{STD} 0.1.0")
    rc, errors, report = _check(root / "registry", base, cwd=root)
    assert rc == 0 and report["ok"], report["problems"]

    # a new version: bump, commit, release; still no key
    py = root / "plugins" / STD / "pyproject.toml"
    py.write_text(py.read_text().replace('version = "0.1.0"', 'version = "0.1.1"'))
    _commit(root, "bump")
    out = llmos("index", "release-standard", STD, "--index", str(root / "registry"), "--wheelhouse", str(wh),
                cwd=root, check=True)
    assert f"{STD} 0.1.1: new-version" in out.stdout
    _commit(root, f"{STD} 0.1.1")
    rc, errors, report = _check(root / "registry", released, cwd=root)
    assert rc == 0, report["problems"]
    assert not (llmos_home / "keys").exists()

    # the recorded hash is not what the tree builds: refused
    vfile = entry / "versions" / "0.1.1.toml"
    good = vfile.read_text()
    vfile.write_text(re.sub(r'sha256 = "[0-9a-f]{64}"', 'sha256 = "' + "0" * 64 + '"', good))
    rc, errors, _ = _check(root / "registry", released, cwd=root)
    assert rc == 1 and "in-tree-build" in errors
    vfile.write_text(good)

    # a community entry cannot claim to be in-tree to skip its reviews: its tree must be
    # plugins/<its name> of this repository
    evil = root / "registry" / "plugins" / "llmos-evil"
    shutil.copytree(entry, evil)
    (evil / "plugin.toml").write_text((evil / "plugin.toml").read_text().replace(f'name = "{STD}"',
                                                                               'name = "llmos-evil"'))
    for f in (evil / "versions").glob("*.toml"):
        f.write_text(f.read_text().replace("llmos_jsonl_sink-", "llmos_evil-"))
    rc, errors, report = _check(root / "registry", released, cwd=root, strict=False)
    assert rc == 1 and "in-tree-source" in errors, report["problems"]


# -- 12.15: a pull request cannot add its own reviewers ---------------------------------


def test_change_adding_its_own_reviewers_fails(world, tmp_path):
    """The attack: one change adds two index maintainers to maintainers.toml, a plugin,
    and their approvals of both. `index check --base --strict` must fail."""
    env = {"LLMOS_HOME": str(world.home)}
    for h in ("eve", "frank"):
        world.pubs[h] = llmos("contrib", "keygen", "--handle", h, extra_env=env, check=True).stdout.strip()
    base = git(world.root, "rev-parse", "HEAD")
    with open(world.index / "maintainers.toml", "a") as fh:
        for h in ("eve", "frank"):
            fh.write(f'\n[[maintainer]]\nhandle = "{h}"\npublic_key = "{world.pubs[h]}"\nroles = ["index", "core"]\n'
                     "since = 2026-12-01\n")
    # the plugin: mallory's entry, a copy of llmos-hello under another name
    evil = world.index / "plugins" / "llmos-sneaky"
    shutil.copytree(world.entry_dir, evil, ignore=shutil.ignore_patterns("reviews"))
    (evil / "plugin.toml").write_text((evil / "plugin.toml").read_text()
                                      .replace('name = "llmos-hello"', 'name = "llmos-sneaky"')
                                      .replace('handle = "alice"', 'handle = "mallory"')
                                      .replace(world.pubs["alice"], world.pubs["mallory"]))
    for f in (evil / "versions").glob("*.toml"):
        f.write_text(f.read_text().replace("llmos_hello-", "llmos_sneaky-"))
    llmos("contrib", "review", "llmos-sneaky", "--handle", "mallory", "--decision", "consent", "--index",
          str(world.index), extra_env=env, check=True)
    for h in ("eve", "frank"):
        llmos("contrib", "approve", "llmos-sneaky", "--handle", h, "--index", str(world.index), extra_env=env,
              check=True)
        llmos("contrib", "approve-maintainers", "--handle", h, "--index", str(world.index), extra_env=env,
              check=True)
    rc, errors, report = _check(world.index, base, cwd=world.root, home=world.home)
    assert rc == 1 and not report["ok"]
    assert {"maintainers-approval", "approvals-missing"} <= errors, report["problems"]
    msg = next(p["message"] for p in report["problems"] if p["rule"] == "maintainers-approval")
    assert "adds eve" in msg and "eve (added by this change as of the base)" in msg

    # the same two maintainers approved by the core maintainers as of the base (bob,
    # carol): the maintainers change passes, but the plugin's approvals still come from
    # maintainers added in this very change, so it still fails
    for h in ("bob", "carol"):
        llmos("contrib", "approve-maintainers", "--handle", h, "--index", str(world.index), extra_env=env,
              check=True)
    rc, errors, report = _check(world.index, base, cwd=world.root, home=world.home)
    assert rc == 1 and "maintainers-approval" not in errors and "approvals-missing" in errors
    assert "approver-unknown" in errors


# -- key rotation, loss and revocation, end to end -------------------------------------


def test_key_rotation_loss_and_revocation_end_to_end(world):
    env = {"LLMOS_HOME": str(world.home)}
    idx = str(world.index)
    base = git(world.root, "rev-parse", "HEAD")

    # 1. bob rotates: his old key signs his approval; one of three is not a majority
    out = llmos("contrib", "rotate-key", "--handle", "bob", "--index", idx, extra_env=env, check=True)
    assert "approved the change with your old key" in out.stdout
    maint = tomllib.loads((world.index / "maintainers.toml").read_text())
    bob = next(m for m in maint["maintainer"] if m["handle"] == "bob")
    assert bob["previous_keys"][0]["public_key"] == world.pubs["bob"] and bob["public_key"] != world.pubs["bob"]
    retired = sorted((world.home / "keys").glob("bob.key.retired-*"))
    assert len(retired) == 1
    rc, errors, _ = _check(world.index, base, cwd=world.root, home=world.home)
    assert rc == 1 and errors == {"maintainers-approval"}
    llmos("contrib", "approve-maintainers", "--handle", "carol", "--index", idx, extra_env=env, check=True)
    rc, errors, report = _check(world.index, base, cwd=world.root, home=world.home)
    assert rc == 0, report["problems"]  # llmos-hello's approvals by bob's old key still verify
    rotated = world.commit("rotate bob's key")

    # 2. bob reviews with his new key: fine; with the retired key: refused for a new review
    llmos("contrib", "approve", "llmos-hello", "--handle", "bob", "--index", idx, extra_env=env, check=True)
    rc, errors, report = _check(world.index, rotated, cwd=world.root, home=world.home)
    assert rc == 0, report["problems"]
    old_home = world.home.parent / "old-bob"
    (old_home / "keys").mkdir(parents=True)
    shutil.copy2(retired[0], old_home / "keys" / "bob.key")
    llmos("contrib", "approve", "llmos-hello", "--handle", "bob", "--index", idx,
          extra_env={"LLMOS_HOME": str(old_home)}, check=True)
    rc, errors, report = _check(world.index, rotated, cwd=world.root, home=world.home)
    assert rc == 1 and "signature-invalid" in errors
    assert any("retired key" in p["message"] for p in report["problems"])
    git(world.root, "checkout", "-q", "--", ".")

    # 3. dave lost his key: no self-approval; bob (new key) and carol approve
    llmos("contrib", "rotate-key", "--handle", "dave", "--lost", "--index", idx, extra_env=env, check=True)
    for h in ("bob", "carol"):
        llmos("contrib", "approve-maintainers", "--handle", h, "--index", idx, extra_env=env, check=True)
    rc, errors, report = _check(world.index, rotated, cwd=world.root, home=world.home)
    assert rc == 0, report["problems"]
    lost = world.commit("dave lost his key")

    # 4. carol's key leaked: revoked; what it signed (her approval of llmos-hello) stops
    # verifying, so llmos-hello is short of approvals until she or another signs again
    llmos("contrib", "rotate-key", "--handle", "carol", "--revoke", "--reason", "key leaked", "--index", idx,
          extra_env=env, check=True)
    llmos("contrib", "approve-maintainers", "--handle", "dave", "--index", idx, extra_env=env, check=True)
    rc, errors, report = _check(world.index, lost, cwd=world.root, home=world.home)
    assert rc == 1 and {"signature-invalid", "approvals-missing"} <= errors
    assert "maintainers-approval" not in errors
    assert any("revoked key (key leaked)" in p["message"] for p in report["problems"])
    llmos("contrib", "approve", "llmos-hello", "--handle", "carol", "--index", idx, extra_env=env, check=True)
    rc, errors, report = _check(world.index, lost, cwd=world.root, home=world.home)
    assert rc == 0, report["problems"]
