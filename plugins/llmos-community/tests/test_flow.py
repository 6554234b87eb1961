"""The whole community flow, through the real command line, in a temporary git repository:
a new contributor scaffolds a plugin, builds and submits it, two index maintainers
approve, ``index check --base`` passes, and a third user installs it by name into a
throwaway environment where ``llmos components`` then shows it."""

from __future__ import annotations

import json
import stat
import sys

from community_helpers import INDEX_MAINTAINERS, commit_project, git, has_dist, llmos, write_maintainers


def test_scaffold_submit_approve_check_install(tmp_path, llmos_home, make_venv):
    repo, work, wheelhouse = tmp_path / "repo", tmp_path / "work", tmp_path / "wheelhouse"
    index = repo / "registry"
    pubs = {}
    for h in ("alice", *INDEX_MAINTAINERS):
        out = llmos("contrib", "keygen", "--handle", h, check=True)
        pubs[h] = out.stdout.strip()
        key = llmos_home / "keys" / f"{h}.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    git(tmp_path, "init", "-q", str(repo))
    write_maintainers(index, pubs)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "index")
    base = git(repo, "rev-parse", "HEAD")

    # alice: scaffold, the generated tests' contract check, submit
    out = llmos("plugin", "new", "llmos-wordcount", "--stage", "data", "--dir", str(work), "--author", "Alice",
                "--email", "alice@example.org", "--source-url", "https://example.org/alice/llmos-wordcount",
                check=True)
    project = work / "llmos-wordcount"
    assert "Created" in out.stdout and (project / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "OK" in llmos("plugin", "test", str(project), check=True).stdout
    commit = commit_project(project)
    out = llmos("contrib", "submit", str(project), "--handle", "alice", "--index", str(index),
                "--wheelhouse", str(wheelhouse), "--json", check=True)
    sub = json.loads(out.stdout)
    assert sub["kind"] == "new-plugin" and sub["version"] == "0.1.0"
    assert _read_version(index, "llmos-wordcount", "0.1.0")["source"]["commit"] == commit

    # not approved yet: the check fails naming the rule
    out = llmos("index", "check", str(index), "--base", base)
    assert out.returncode == 1 and "approvals-missing" in out.stderr

    # alice cannot approve her own plugin; bob and carol do
    out = llmos("contrib", "approve", "llmos-wordcount", "--handle", "alice", "--index", str(index))
    assert out.returncode != 0 and "own submission" in out.stderr
    llmos("contrib", "approve", "llmos-wordcount", "--handle", "bob", "--index", str(index), check=True)
    out = llmos("contrib", "approve", "llmos-wordcount", "--handle", "carol", "--index", str(index), "--json",
                check=True)
    assert json.loads(out.stdout)["status"] == "approved"
    out = llmos("index", "check", str(index), "--base", base, "--json", check=True)
    report = json.loads(out.stdout)
    assert report["ok"] and report["plugins"] == 1 and report["problems"] == []
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "add llmos-wordcount")

    # the database recorded the submission and the reviews
    status = json.loads(llmos("contrib", "status", "llmos-wordcount", "--index", str(index), "--json",
                              check=True).stdout)
    (s,) = [s for s in status["submissions"] if s["kind"] == "new-plugin"]
    assert s["author"] == "alice" and s["status"] == "approved"
    assert {(r["reviewer"], r["decision"]) for r in s["reviews"]} >= {("alice", "consent"), ("bob", "approve"),
                                                                       ("carol", "approve")}

    # a third user installs it by name into their own environment
    py = make_venv()
    assert not has_dist(py, "llmos-wordcount")
    env = {"LLMOS_INDEX": str(index), "LLMOS_WHEELHOUSE": str(wheelhouse)}
    out = llmos("plugin", "search", "corpus", "--json", python=str(py), extra_env=env, check=True)
    assert [h["name"] for h in json.loads(out.stdout)] == ["llmos-wordcount"]
    out = llmos("plugin", "install", "llmos-wordcount", python=str(py), extra_env=env, check=True)
    assert "Installed llmos-wordcount 0.1.0" in out.stdout
    assert has_dist(py, "llmos-wordcount")
    comps = json.loads(llmos("components", "--json", python=str(py), extra_env=env, check=True).stdout)
    assert any(c.get("ref") == "data.wordcount" and c.get("plugin") == "llmos-wordcount" for c in _flat(comps))
    info = json.loads(llmos("plugin", "info", "llmos-wordcount", "--json", python=str(py), extra_env=env,
                            check=True).stdout)
    assert info["index"]["latest"] == "0.1.0"
    assert info["installed_from"]["source"] == "index"
    assert info["installed_from"]["sha256"] == _read_version(index, "llmos-wordcount", "0.1.0")["artifact"]["sha256"]

    # uninstall puts it away and is recorded
    llmos("plugin", "uninstall", "llmos-wordcount", "-y", python=str(py), extra_env=env, check=True)
    assert not has_dist(py, "llmos-wordcount")
    # ...and our own environment was never touched
    assert not has_dist(sys.executable, "llmos-wordcount")


def _flat(comps):
    if isinstance(comps, dict):
        out = []
        for v in comps.values():
            out.extend(_flat(v))
        return out
    return list(comps)


def _read_version(index, name, version):
    import tomllib

    return tomllib.loads((index / "plugins" / name / "versions" / f"{version}.toml").read_text())
