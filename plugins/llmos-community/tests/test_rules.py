"""Every governance rule broken once: ``index check`` or ``install`` fails naming the
rule, and nothing is installed."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w
from community_helpers import commit_project, has_dist, llmos

from llmos_community import contrib, signing


def _edit(path, **changes):
    data = tomllib.loads(path.read_text())
    for dotted, value in changes.items():
        keys = dotted.split("__")
        d = data
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    path.write_text(tomli_w.dumps(data))


def test_approved_world_is_clean(world):
    assert [str(p) for p in world.check(base="HEAD~1")] == []
    assert [str(p) for p in world.check()] == []


def test_missing_approval(world):
    (world.entry_dir / "reviews" / "plugin" / "carol.toml").unlink()
    problems = [p for p in world.check() if p.rule == "approvals-missing"]
    assert problems and "needs 2 approvals" in problems[0].message and "bob" in problems[0].message
    assert problems[0].path.endswith("plugins/llmos-hello/plugin.toml") and problems[0].field == "reviews"


def test_self_approval(world):
    from llmos_community.index import DirSource, load_index

    entry = load_index(DirSource(world.index)).find("llmos-hello")
    (world.entry_dir / "reviews" / "plugin" / "carol.toml").unlink()
    contrib.sign_review(world.index, entry, "alice", "approve", "plugin")  # the author signs her own approval
    assert {"self-approval", "approvals-missing"} <= world.errors()
    # and the CLI refuses to make such a signature in the first place
    with pytest.raises(Exception, match="own submission"):
        contrib.review("llmos-hello", "alice", "approve", world.index)


def test_stale_approval_after_edit(world):
    _edit(world.entry_dir / "plugin.toml", summary="A different summary after the approvals")
    stale = [p for p in world.check() if p.rule == "approval-stale"]
    assert {p.path.rsplit("/", 1)[-1] for p in stale} == {"alice.toml", "bob.toml", "carol.toml"}
    assert "approvals-missing" in world.errors()
    # re-consent and re-approval make it clean again
    contrib.review("llmos-hello", "alice", "consent", world.index)
    contrib.review("llmos-hello", "bob", "approve", world.index)
    contrib.review("llmos-hello", "carol", "approve", world.index)
    assert world.errors() == set()


def test_description_edit_is_an_edit(world):
    (world.entry_dir / "README.md").write_text("# llmos-hello\n\nnow says something else\n")
    assert "approval-stale" in world.errors()


def test_edited_released_version(world):
    _edit(world.entry_dir / "versions" / "0.1.0.toml", notes="rewritten after release")
    problems = [p for p in world.check(base="HEAD") if p.rule == "version-immutable"]
    assert problems and problems[0].field == "notes"
    # yanking is the one change allowed after release (with a reason)
    world2 = world.entry_dir / "versions" / "0.1.0.toml"
    _edit(world2, notes="")
    _edit(world2, yanked=True, yanked_reason="crashes on empty files")
    assert "version-immutable" not in world.errors(base="HEAD")


def test_deleted_version_and_lower_new_version(world):
    v1 = world.entry_dir / "versions" / "0.1.0.toml"
    data = tomllib.loads(v1.read_text())
    v1.unlink()
    data["version"] = "0.0.9"
    (world.entry_dir / "versions" / "0.0.9.toml").write_text(tomli_w.dumps(data))
    errors = world.errors(base="HEAD")
    assert {"version-deleted", "version-increasing", "artifact-wheel"} <= errors


def test_unyanked_reason_and_local_version(world):
    _edit(world.entry_dir / "versions" / "0.1.0.toml", yanked=True)
    assert "yank-reason" in world.errors()
    data = tomllib.loads((world.entry_dir / "versions" / "0.1.0.toml").read_text())
    data["version"] = "0.2.0+local"
    (world.entry_dir / "versions" / "0.2.0+local.toml").write_text(tomli_w.dumps(data))
    assert "version-pep440" in world.errors()


def test_wrong_key(world):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from llmos_community.index import DirSource, load_index

    entry = load_index(DirSource(world.index)).find("llmos-hello")
    # bob's approval signed with a key that is not bob's key in maintainers.toml
    contrib.sign_review(world.index, entry, "bob", "approve", "plugin", private_key=Ed25519PrivateKey.generate())
    problems = [p for p in world.check() if p.rule == "signature-invalid"]
    assert problems and problems[0].path.endswith("reviews/plugin/bob.toml")
    assert "approvals-missing" in world.errors()


def test_forged_record_edit_breaks_signature(world):
    _edit(world.entry_dir / "reviews" / "plugin" / "bob.toml", reason="I did not write this")
    assert "signature-invalid" in world.errors()


def test_unknown_approver(world):
    from llmos_community.index import DirSource, load_index

    entry = load_index(DirSource(world.index)).find("llmos-hello")
    contrib.sign_review(world.index, entry, "mallory", "approve", "plugin")  # not an index maintainer
    assert "approver-unknown" in world.errors()


def _second_plugin(world, name: str, tmp_path, approvers=("bob", "carol")):
    from llmos_community.scaffold import scaffold

    project = scaffold(name, "monitoring", tmp_path / "w2", author="Dave", email="dave@example.org",
                       source_url=f"https://example.org/dave/{name}")
    commit_project(project)
    contrib.submit(project, "dave", world.index, wheelhouse=world.wheelhouse)
    for h in approvers:
        contrib.review(name, h, "approve", world.index)


def test_lookalike_name_needs_an_extra_approval(world, tmp_path):
    _second_plugin(world, "llmos-helo", tmp_path)
    flagged = [p for p in world.check(base="HEAD") if p.rule == "name-lookalike"]
    assert len(flagged) == 1 and flagged[0].level == "warning" and "llmos-helo" in flagged[0].message
    assert "approvals-missing" in world.errors(base="HEAD")
    # dave is its author, so he cannot be the third; a third index maintainer... there are only
    # bob, carol and dave: make dave's plugin approved by a newly added index maintainer instead
    assert "self-approval" in {p.rule for p in _after(world, "dave")}


def _after(world, handle):
    contrib.sign_review(world.index, _entry(world, "llmos-helo"), handle, "approve", "plugin")
    return world.check(base="HEAD")


def _entry(world, name):
    from llmos_community.index import DirSource, load_index

    return load_index(DirSource(world.index)).find(name)


def test_confusable_and_duplicate_names_are_refused(world, tmp_path):
    _second_plugin(world, "llmos-he11o", tmp_path)  # 'l' vs '1'
    assert "name-confusable" in world.errors(base="HEAD")


def test_stdlib_and_removed_names(world, tmp_path):
    (world.index / "removed.toml").write_text(
        'removed = [{ name = "llmos-gone", reason = "malware", date = 2026-11-01, link = "https://example.org/1" }]\n')
    _second_plugin(world, "llmos_gone", tmp_path)
    errors = world.errors()
    assert "name-removed" in errors
    from llmos_community import names

    assert names.is_stdlib("asyncio") and not names.is_stdlib("llmos-asyncio")


def test_block_and_request_changes(world):
    with pytest.raises(Exception, match="reason"):
        contrib.review("llmos-hello", "dave", "block", world.index)
    contrib.review("llmos-hello", "dave", "block", world.index, reason="ships a binary blob")
    problems = {p.rule: p for p in world.check()}
    assert "blocked" in problems and "ships a binary blob" in problems["blocked"].message
    (world.entry_dir / "reviews" / "plugin" / "dave.toml").unlink()
    contrib.review("llmos-hello", "dave", "request-changes", world.index, reason="add a changelog")
    assert "changes-requested" in world.errors()


def test_new_version_needs_its_maintainer(world):
    data = tomllib.loads((world.entry_dir / "versions" / "0.1.0.toml").read_text())
    data["version"] = "0.2.0"
    data["artifact"]["url"] = "llmos_hello-0.2.0-py3-none-any.whl"
    (world.entry_dir / "versions" / "0.2.0.toml").write_text(tomli_w.dumps(data))
    assert "version-approval-missing" in world.errors(base="HEAD")
    with pytest.raises(Exception, match="one of its maintainers"):
        contrib.review("llmos-hello", "bob", "approve", world.index, version="0.2.0")
    contrib.review("llmos-hello", "alice", "approve", world.index, version="0.2.0")
    assert world.errors(base="HEAD") == set()


def test_unconsented_maintainer(world):
    data = tomllib.loads((world.entry_dir / "plugin.toml").read_text())
    data["maintainers"].append({"handle": "mallory", "name": "M", "public_key": world.pubs["mallory"]})
    (world.entry_dir / "plugin.toml").write_text(tomli_w.dumps(data))
    for h in ("alice",):
        contrib.review("llmos-hello", h, "consent", world.index)
    for h in ("bob", "carol"):
        contrib.review("llmos-hello", h, "approve", world.index)
    problems = [p for p in world.check() if p.rule == "consent-missing"]
    assert [p.field for p in problems] == ["maintainers.mallory"]
    contrib.review("llmos-hello", "mallory", "consent", world.index)
    assert world.errors() == set()


def test_deprecation_needs_a_reason_and_schema_errors_name_the_field(world):
    _edit(world.entry_dir / "plugin.toml", status="deprecated")
    assert "deprecation-reason" in world.errors()
    _edit(world.entry_dir / "plugin.toml", license="Not-A-License", stages=["cooking"])
    problems = [p for p in world.check()]
    assert any(p.rule == "schema" and p.field == "stages.0" for p in problems)


def test_deleted_plugin_needs_a_removal_record(world):
    import shutil

    shutil.rmtree(world.entry_dir)
    assert "plugin-removed-record" in world.errors(base="HEAD")
    (world.index / "removed.toml").write_text(
        'removed = [{ name = "llmos-hello", reason = "abandoned", date = 2026-11-20, link = "https://example.org/2" }]\n')
    assert "plugin-removed-record" not in world.errors(base="HEAD")


def test_cli_prints_file_field_rule(world):
    (world.entry_dir / "reviews" / "plugin" / "carol.toml").unlink()
    out = llmos("index", "check", str(world.index))
    assert out.returncode == 1
    assert "plugins/llmos-hello/plugin.toml: reviews: approvals-missing:" in out.stderr


# -- install refusals: nothing installed ------------------------------------------------


def _install(world, py, *args):
    return llmos("plugin", "install", *args, "--index", str(world.index), "--wheelhouse", str(world.wheelhouse),
                 python=str(py))


def test_bad_hash_is_refused_before_pip(world, make_venv):
    py = make_venv()
    wheel = next(world.wheelhouse.glob("llmos_hello-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[-30] ^= 0xFF  # same size, different bytes
    wheel.write_bytes(bytes(data))
    out = _install(world, py, "llmos-hello")
    assert out.returncode != 0 and "artifact-hash" in out.stderr
    assert not has_dist(py, "llmos-hello")


def test_hook_after_plugin_list_yanked_version_skipped_unless_pinned_and_warned(world, make_venv):
    """A yanked release installs only when pinned; llmos-community's
    llmos_after_plugin_list then warns its users on `llmos plugin list`."""
    out = llmos("contrib", "yank", "llmos-hello", "0.1.0", "--index", str(world.index))
    assert out.returncode != 0 and "needs a reason" in out.stderr
    llmos("contrib", "yank", "llmos-hello", "0.1.0", "--reason", "broken on empty input", "--index",
          str(world.index), check=True)
    assert world.errors(base="HEAD") == set()  # a yank edits no reviewed field
    py = make_venv()
    out = _install(world, py, "llmos-hello")
    assert out.returncode != 0 and "yanked" in out.stderr and "broken on empty input" in out.stderr
    assert not has_dist(py, "llmos-hello")
    out = _install(world, py, "llmos-hello==0.1.0")
    assert out.returncode == 0, out.stderr
    assert "yanked" in out.stderr and has_dist(py, "llmos-hello")
    # users of a yanked release are warned by `llmos plugin list`
    out = llmos("plugin", "list", python=str(py), extra_env={"LLMOS_INDEX": str(world.index)}, check=True)
    assert "llmos-hello 0.1.0 is yanked (broken on empty input)" in out.stderr


def test_unreviewed_entry_incompatible_api_and_missing_requirement_are_refused(world, make_venv):
    py = make_venv()
    (world.entry_dir / "reviews" / "plugin" / "carol.toml").unlink()
    out = _install(world, py, "llmos-hello")
    assert out.returncode != 0 and "approvals-missing" in out.stderr
    from llmos_community.index import DirSource, load_index
    from llmos_community.resolver import resolve

    contrib.review("llmos-hello", "carol", "approve", world.index)
    idx = load_index(DirSource(world.index))
    with pytest.raises(Exception, match="plugin API"):
        resolve(idx, "llmos-hello", api_version=99)
    from llmos_community.installer import missing_requirements

    assert missing_requirements(["pydantic>=2", "surely-not-installed-pkg>=1"]) == ["surely-not-installed-pkg>=1"]
    assert missing_requirements(["pydantic<1"])[0].startswith("pydantic<1 (installed:")
    assert not has_dist(py, "llmos-hello")


def test_plugin_that_does_not_load_is_removed_again(world, make_venv, tmp_path):
    """A release that installs but fails to load is uninstalled: the environment is as before."""
    import shutil

    from llmos_community.project import build_wheel

    broken = tmp_path / "broken"
    shutil.copytree(world.project, broken, ignore=shutil.ignore_patterns("dist", "build", "*.egg-info"))
    plugin_py = broken / "src" / "llmos_hello" / "plugin.py"
    plugin_py.write_text(plugin_py.read_text().replace("LLMOS_API = 2", "LLMOS_API = 99"))
    wheel = build_wheel(broken, tmp_path / "wh2")
    sha, size = signing.hashlib.sha256(wheel.read_bytes()).hexdigest(), wheel.stat().st_size
    _edit(world.entry_dir / "versions" / "0.1.0.toml", artifact__sha256=sha, artifact__size=size)
    contrib.review("llmos-hello", "alice", "consent", world.index)
    contrib.review("llmos-hello", "bob", "approve", world.index)
    contrib.review("llmos-hello", "carol", "approve", world.index)
    py = make_venv()
    out = llmos("plugin", "install", "llmos-hello", "--index", str(world.index), "--wheelhouse",
                str(tmp_path / "wh2"), python=str(py))
    assert out.returncode != 0 and "does not load" in out.stderr and "incompatible" in out.stderr
    assert not has_dist(py, "llmos-hello")


def test_new_version_submit_and_upgrade(world, make_venv, tmp_path):
    """alice releases 0.2.0 (self-published), a user upgrades from 0.1.0; a failing
    upgrade puts 0.1.0 back."""
    import shutil

    from llmos_community.project import build_wheel

    py = make_venv()
    out = _install(world, py, "llmos-hello")
    assert out.returncode == 0, out.stderr
    project = tmp_path / "llmos-hello"
    shutil.copytree(world.project, project, ignore=shutil.ignore_patterns("dist", "build", "*.egg-info", ".git"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    with pytest.raises(Exception, match="git checkout"):
        contrib.submit(project, "alice", world.index, wheelhouse=world.wheelhouse)
    commit_project(project)
    with pytest.raises(Exception, match="not a maintainer"):
        contrib.submit(project, "bob", world.index, wheelhouse=world.wheelhouse)
    res = contrib.submit(project, "alice", world.index, wheelhouse=world.wheelhouse)
    assert res.kind == "new-version"
    assert world.errors(base="HEAD") == set()
    out = llmos("plugin", "upgrade", "llmos-hello", "--index", str(world.index), "--wheelhouse",
                str(world.wheelhouse), "--json", python=str(py))
    assert out.returncode == 0, out.stderr
    assert '"action": "upgraded"' in out.stdout and '"from": "0.1.0"' in out.stdout
    # 0.3.0 installs but does not load: the upgrade is rolled back to 0.2.0
    hook = project / "src" / "llmos_hello" / "plugin.py"
    hook.write_text(hook.read_text().replace("LLMOS_API = 2", "LLMOS_API = 99"))
    pyproject.write_text(pyproject.read_text().replace('version = "0.2.0"', 'version = "0.3.0"'))
    from community_helpers import git

    git(project, "commit", "-qam", "0.3.0")
    contrib.submit(project, "alice", world.index, wheelhouse=world.wheelhouse)
    out = llmos("plugin", "upgrade", "llmos-hello", "--index", str(world.index), "--wheelhouse",
                str(world.wheelhouse), python=str(py))
    assert out.returncode != 0 and "does not load" in out.stderr
    ver = llmos("plugin", "info", "llmos-hello", "--json", python=str(py),
                extra_env={"LLMOS_INDEX": str(world.index)})
    assert '"version": "0.2.0"' in ver.stdout


def test_index_at_repository_root_and_bad_plugin_key(world):
    """--base works when the index is the repository root; a malformed maintainer key is named."""
    import shutil

    from community_helpers import git

    from llmos_community.check import check_index
    from llmos_community.index import DirSource, git_source_for, load_index

    root = world.root.parent / "rootrepo"
    shutil.copytree(world.index, root)
    git(root.parent, "init", "-q", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "index at the root")
    base = load_index(git_source_for(root, "HEAD"))
    assert "llmos-hello" in base.plugins and base.maintainers is not None
    assert [p for p in check_index(load_index(DirSource(root)), base) if p.level == "error"] == []
    _edit(root / "plugins" / "llmos-hello" / "plugin.toml", maintainers=[
        {"handle": "alice", "name": "Alice", "public_key": "not-a-key"}])
    problems = check_index(load_index(DirSource(root)), base)
    assert any(p.rule == "maintainers-key" and p.field == "maintainers.alice.public_key" for p in problems)


def test_emeritus_approvals_count_only_for_merged_entries(world):
    text = (world.index / "maintainers.toml").read_text()
    blocks = text.split("[[maintainer]]")
    blocks = [b.replace("since =", 'status = "emeritus"\nsince =') if 'handle = "carol"' in b else b for b in blocks]
    (world.index / "maintainers.toml").write_text("[[maintainer]]".join(blocks))
    assert world.errors(base="HEAD") == {"maintainers-approval"}  # 2/3 of the core maintainers
    contrib.approve_maintainers("bob", world.index)
    contrib.approve_maintainers("dave", world.index)
    assert world.errors(base="HEAD") == set()  # llmos-hello was merged with carol's approval
    world.commit("carol is emeritus")
    _edit(world.entry_dir / "plugin.toml", summary="edited after carol went emeritus")
    contrib.review("llmos-hello", "alice", "consent", world.index)
    contrib.review("llmos-hello", "bob", "approve", world.index)
    with pytest.raises(Exception, match="not an index maintainer"):
        contrib.review("llmos-hello", "carol", "approve", world.index)
    assert "approvals-missing" in world.errors(base="HEAD")
    contrib.review("llmos-hello", "dave", "approve", world.index)
    assert world.errors(base="HEAD") == {"approval-stale"}  # carol's old approval: remove it
    (world.entry_dir / "reviews" / "plugin" / "carol.toml").unlink()
    assert world.errors(base="HEAD") == set()
