"""The real index in registry/: it checks clean, its keys are the committed public
keys, and a standard plugin's wheel rebuilt from the recorded commit is the reviewed
artifact (or, built by another setuptools, is refused by install — never silently
accepted)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

from community_helpers import has_dist, llmos

from llmos_community.check import check_index
from llmos_community.index import DirSource, git_source_for, load_index

REPO = Path(__file__).resolve().parents[3]
INDEX = REPO / "registry"
STANDARD = ["llmos-community", "llmos-compress", "llmos-data", "llmos-export", "llmos-jsonl-sink", "llmos-models",
            "llmos-registry",
            "llmos-monitor", "llmos-serve",
            "llmos-train"]


def test_registry_checks_clean():
    idx = load_index(DirSource(INDEX))
    problems = [str(p) for p in check_index(idx)]
    assert problems == []
    assert set(STANDARD) <= {e.manifest.name for e in idx.plugins.values()}
    maint = idx.index_maintainers()
    assert len(maint) >= 2
    for entry in idx.plugins.values():
        if entry.manifest.origin == "in-tree":
            assert not entry.reviews  # approved by the repository's review, no signature
            continue
        approvers = {r.handle for r in entry.reviews if r.model.decision == "approve"}
        assert len(approvers & set(maint)) >= 2


def test_registry_checks_clean_against_head_with_cli():
    out = llmos("index", "check", str(INDEX), "--base", "HEAD", "--json", cwd=REPO)
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["ok"], report["problems"]


def test_every_standard_plugin_dir_has_an_entry():
    """Every plugin distribution in plugins/ that is committed has its index entry."""
    committed = subprocess.run(["git", "-C", str(REPO), "ls-files", "plugins/*/pyproject.toml"],
                               capture_output=True, text=True, check=True).stdout.split()
    dists = {tomllib.loads((REPO / p).read_text())["project"]["name"] for p in committed}
    entries = {p.name for p in (INDEX / "plugins").iterdir()}
    missing = sorted(d for d in dists if d not in entries)
    assert not missing, f"add index entries: llmos index release-standard {' '.join(missing)}"


def test_no_private_key_in_the_repository():
    tracked = subprocess.run(["git", "-C", str(REPO), "grep", "-l", "PRIVATE KEY", "--", "registry"],
                             capture_output=True, text=True).stdout.split()
    assert tracked == []


def test_schema_files_match_the_models(tmp_path):
    out = llmos("index", "schema", "--out", str(tmp_path), check=True)
    assert "plugin.schema.json" in out.stdout
    for name in ("plugin", "version", "review", "maintainers", "removed"):
        generated = json.loads((tmp_path / f"{name}.schema.json").read_text())
        committed = json.loads((INDEX / "schema" / f"{name}.schema.json").read_text())
        assert generated == committed, f"registry/schema is stale: run llmos index schema --out registry/schema"


def test_standard_wheel_rebuilt_from_recorded_commit_installs_by_name(tmp_path, make_venv, llmos_home):
    import setuptools

    from llmos_community.project import build_wheel, file_sha256

    name = "llmos-jsonl-sink"
    latest = max((INDEX / "plugins" / name / "versions").glob("*.toml"),
                 key=lambda p: tuple(int(x) for x in p.stem.split(".")))
    version = tomllib.loads(latest.read_text())
    src = version["source"]
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", src["commit"], src["subdirectory"]],
                          capture_output=True)
    assert data.returncode == 0, f"commit {src['commit']} is not in this clone (fetch full history): {data.stderr}"
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    wheel = build_wheel(tmp_path / "src" / src["subdirectory"], tmp_path / "wheelhouse",
                        epoch=version["build"]["source_date_epoch"])
    sha, size = file_sha256(wheel)
    same_backend = version["build"]["backend"] == f"setuptools {setuptools.__version__}"
    py = make_venv(hide=(name,))
    assert not has_dist(py, name)
    out = llmos("plugin", "install", name, "--index", str(INDEX), "--wheelhouse", str(tmp_path / "wheelhouse"),
                python=str(py), extra_env={"LLMOS_PLUGINS": name})
    if sha == version["artifact"]["sha256"]:
        assert size == version["artifact"]["size"]
        assert out.returncode == 0, out.stderr
        assert f"Installed llmos-jsonl-sink {version['version']}" in out.stdout and has_dist(py, name)
        comps = llmos("components", "--json", python=str(py), extra_env={"LLMOS_PLUGINS": name}, check=True)
        assert any(c["plugin"] == name for c in json.loads(comps.stdout))
    else:
        # a different build backend makes different bytes: that is not the reviewed artifact
        assert not same_backend, "same commit, same setuptools, different wheel: the build is not reproducible"
        assert out.returncode != 0 and ("artifact-hash" in out.stderr or "artifact-size" in out.stderr)
        assert not has_dist(py, name)
    assert sys.executable  # our own interpreter is untouched (installs went to the throwaway venv)
