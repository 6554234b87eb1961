"""``llmos contrib``: write and sign index entries and reviews, and record them.

- :func:`submit` — from a plugin project (or a built wheel): fill in
  ``plugins/<name>/plugin.toml`` (new plugin) and ``versions/<v>.toml``, sign the
  submitter's consent (and, for a new version, their maintainer approval).
- :func:`review` — sign an approval, consent, request for changes or block bound to
  the digest of the entry as it is now.
- :func:`status` — submissions and reviews from the database, and what
  ``index check`` says about the entry now.

Signatures are made with the private key in ``$LLMOS_HOME/keys/<handle>.key``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos_community import names, signing
from llmos_community.index import DirSource, Index, PluginEntry, load_index
from llmos.sdk import ConflictError, NotFoundError, ValidationError


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def dump_toml(data: dict[str, Any], header: str = "") -> str:
    import tomli_w

    text = tomli_w.dumps(_clean(data))
    return (header + "\n" if header else "") + text


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


@dataclass
class SubmitResult:
    name: str
    version: str
    kind: str  # new-plugin | new-version
    digest: str
    written: list[str] = field(default_factory=list)
    lookalikes: list[str] = field(default_factory=list)


def _reload(root: Path) -> Index:
    return load_index(DirSource(root, label=str(root)))


def sign_review(root: Path, entry: PluginEntry, handle: str, decision: str, subject: str, reason: str = "",
                private_key: Any = None) -> tuple[Path, str, str]:
    """Sign ``decision`` on ``subject`` of ``entry`` as it is now; write the review file.

    :returns: ``(path written, digest, signature)``.
    """
    from llmos_community.check import current_digest

    covers = sorted(entry.versions) if subject == "plugin" else []
    digest_ = current_digest(entry, subject, covers)
    key = private_key if private_key is not None else signing.load_private_key(handle)
    sig = signing.sign(key, signing.review_message(entry.manifest.name, subject, decision, digest_, reason, handle))
    record = {
        "handle": handle, "decision": decision, "subject": subject, "covers": covers, "digest": digest_,
        "reason": reason, "signed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0), "signature": sig,
    }
    path = root / "plugins" / entry.folder / "reviews" / subject / f"{handle}.toml"
    _write(path, dump_toml(record, f"# {decision} by {handle}, signed with ed25519 (llmos contrib)"))
    return path, digest_, sig


def submit(target: Path, handle: str, index_root: Path, *, wheel: Path | None = None,
           artifact_url: str | None = None, wheelhouse: Path | None = None, summary: str | None = None,
           security_contact: str | None = None, source_url: str | None = None, notes: str = "",
           source_commit: str | None = None, subdirectory: str | None = None, epoch: int | None = None,
           record: bool = True) -> SubmitResult:
    """Add the project at ``target`` (its current version) to the index at ``index_root``."""
    from llmos_community import project as proj
    from llmos_community.schema import PluginManifest, VersionManifest

    index_root = Path(index_root)
    if not (index_root / "maintainers.toml").exists():
        raise NotFoundError(f"{index_root} is not a plugin index (no maintainers.toml): pass --index registry/")
    key = signing.load_private_key(handle)
    pub = signing.public_key_of(key)
    project = proj.read_project(target)
    name, version = project.name, project.version
    if not names.is_valid(name):
        raise ValidationError(f"{name!r} is not a valid distribution name: letters, digits, . _ - only")
    from packaging.version import InvalidVersion, Version

    try:
        if Version(version).local is not None or str(Version(version)) != version:
            raise ValidationError(f"version {version!r}: publish a normalized public version such as "
                                  f"{Version(version).public!r}")
    except InvalidVersion as exc:
        raise ValidationError(f"version {version!r} is not a PEP 440 version") from exc
    folder = index_root / "plugins" / names.normalize(name)
    index = _reload(index_root)

    # the wheel: given, or built reproducibly from the project
    if wheel is None:
        out = Path(wheelhouse) if wheelhouse else project.path / "dist"
        wheel = proj.build_wheel(project.path, out, epoch=epoch)
    elif wheelhouse is not None:
        Path(wheelhouse).mkdir(parents=True, exist_ok=True)
        if Path(wheel).resolve().parent != Path(wheelhouse).resolve():
            shutil.copy2(wheel, Path(wheelhouse) / Path(wheel).name)
    from llmos_community.wheels import check_identity, read_wheel, refuse_startup_hooks

    info = read_wheel(Path(wheel))
    check_identity(info, name, version)
    refuse_startup_hooks(info)
    sha, size = proj.file_sha256(Path(wheel))
    commit, remote = proj.git_commit(project.path)
    commit = source_commit or commit
    if not commit:
        raise ValidationError(f"{project.path} is not a git checkout: commit your plugin's source (the index "
                              "records the commit a release was built from), or pass --source-commit SHA")
    meta = project.meta
    urls = {k.lower(): v for k, v in (meta.get("urls") or {}).items()}
    source = source_url or urls.get("source") or urls.get("repository") or remote
    if not source:
        raise ValidationError(f"{project.path}/pyproject.toml: add [project.urls] Source = \"https://...\" "
                              "(a plugin in the index needs a source repository), or pass --source-url")
    import setuptools

    version_doc = {
        "version": version,
        "released": _today(),
        "requires_python": meta.get("requires-python"),
        "requirements": list(meta.get("dependencies", [])),
        "entry_points": project.entry_points,
        "artifact": {"url": artifact_url or Path(wheel).name, "sha256": sha, "size": size},
        "source": {"repository": source, "commit": commit, "subdirectory": subdirectory},
        "build": {"command": "pip wheel --no-deps --no-build-isolation", "backend": f"setuptools {setuptools.__version__}",
                  "source_date_epoch": epoch if epoch is not None else proj.source_date_epoch(project.path)},
        "notes": notes,
    }
    VersionManifest.model_validate(_clean(version_doc))
    vpath = folder / "versions" / f"{version}.toml"
    written: list[Path] = []
    existing = index.plugins.get(names.normalize(name))
    if existing is not None and existing.manifest is not None:
        kind = "new-version"
        if handle not in {m.handle for m in existing.manifest.maintainers}:
            raise ConflictError(f"{handle} is not a maintainer of {name}: only its maintainers "
                                f"({', '.join(m.handle for m in existing.manifest.maintainers)}) publish versions")
        if version in existing.versions:
            old = signing.frozen_version(existing.versions[version].raw or {})
            new = signing.frozen_version(_clean(version_doc))
            old.pop("released", None), new.pop("released", None)
            if old != new:
                raise ConflictError(f"{name} {version} is already in the index with other contents: "
                                    "released versions never change; bump the version and submit again")
        else:
            _write(vpath, dump_toml(version_doc))
            written.append(vpath)
    else:
        kind = "new-plugin"
        stages, comps = proj.describe_components(project)
        modules = proj.load_hook_modules(project)
        if not stages and not any(n.startswith("llmos_") for m in modules.values() for n in dir(m)):
            raise ValidationError(f"{name} implements no llmos hook: its hook module must implement a "
                                  "llmos_register_* or lifecycle hook (check with: llmos plugin test PATH)")
        apis = sorted({getattr(m, "LLMOS_API", 1) for m in modules.values()})
        authors = [{"name": str(a.get("name") or handle), "email": a.get("email")} for a in meta.get("authors", [])]
        if not authors:
            authors = [{"name": handle}]
        authors[0]["handle"] = handle
        contact = security_contact or next((a["email"] for a in authors if a.get("email")), None)
        if not contact:
            raise ValidationError("say where to report a security problem: --security-contact EMAIL-or-URL "
                                  "(or give the first author an email in pyproject.toml)")
        lic = meta.get("license")
        lic = lic if isinstance(lic, str) else (lic or {}).get("text") if isinstance(lic, dict) else None
        if not lic:
            raise ValidationError(f"{project.path}/pyproject.toml: set license = \"Apache-2.0\" (an SPDX expression)")
        plugin_doc = {
            "name": name,
            "summary": _summary(summary or meta.get("description") or ""),
            "description_file": "README.md",
            "license": lic,
            "authors": authors,
            "maintainers": [{"handle": handle, "name": authors[0]["name"], "public_key": pub}],
            "urls": {"homepage": urls.get("homepage"), "source": source, "issues": urls.get("issues")},
            "keywords": list(meta.get("keywords", [])),
            "stages": stages,
            "components": comps,
            "api_versions": apis,
            "status": "active",
            "security_contact": contact,
            "added": _today(),
        }
        PluginManifest.model_validate(_clean(plugin_doc))
        readme = project.path / "README.md"
        ppath = folder / "plugin.toml"
        _write(ppath, dump_toml(plugin_doc))
        _write(folder / "README.md", readme.read_text() if readme.exists() else f"# {name}\n\n{plugin_doc['summary']}\n")
        _write(vpath, dump_toml(version_doc))
        written += [ppath, folder / "README.md", vpath]
    index = _reload(index_root)
    entry = index.plugins[names.normalize(name)]
    lookalikes = [e.manifest.name for e in index.plugins.values()
                  if e is not entry and e.manifest is not None
                  and names.lookalike_reason(name, e.manifest.name) is not None]
    if kind == "new-plugin":
        path, digest_, sig = sign_review(index_root, entry, handle, "consent", "plugin", private_key=key)
    else:
        path, digest_, sig = sign_review(index_root, entry, handle, "approve", version, private_key=key)
    written.append(path)
    if record:
        from llmos_community import records

        records.record_submission(name, version, kind, handle, digest_, pub)
        records.record_review(name, "plugin" if kind == "new-plugin" else version, handle,
                              "consent" if kind == "new-plugin" else "approve", digest_, sig, "", None)
    return SubmitResult(name, version, kind, digest_, [str(p) for p in written], lookalikes)


def _summary(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= 200:
        return text
    first = text.split(". ")[0].rstrip(".") + "."
    return first if len(first) <= 200 else text[:199] + "…"


DECISIONS = ("approve", "consent", "request-changes", "block")


def review(name: str, handle: str, decision: str, index_root: Path, *, version: str | None = None,
           reason: str = "", record: bool = True) -> dict[str, Any]:
    """Sign ``decision`` on plugin ``name`` (or one ``version`` of it)."""
    from llmos_community.check import check_index

    if decision not in DECISIONS:
        raise ValidationError(f"unknown decision {decision!r}: use one of {', '.join(DECISIONS)}")
    if decision in ("block", "request-changes") and not reason.strip():
        raise ValidationError(f"a {decision} needs a written reason: --reason \"...\"")
    index_root = Path(index_root)
    index = _reload(index_root)
    entry = index.find(name)
    m = entry.manifest
    subject = version or "plugin"
    if version is not None and version not in entry.versions:
        raise NotFoundError(f"{m.name} has no version {version} in the index (versions: "
                            f"{', '.join(sorted(entry.versions)) or 'none'})")
    owners = {p.handle for p in m.authors if p.handle} | {mm.handle for mm in m.maintainers}
    plugin_maint = {mm.handle for mm in m.maintainers}
    index_maint = index.index_maintainers()
    if decision == "consent":
        if handle not in plugin_maint:
            raise ValidationError(f"{handle} is not listed as a maintainer of {m.name}; only listed maintainers consent")
        subject = "plugin"
    elif subject == "plugin":
        if decision == "approve" and handle in owners:
            raise ConflictError(f"{handle} is an author or maintainer of {m.name}: nobody approves their own "
                                "submission; two other index maintainers must approve it")
        if handle not in index_maint:
            raise ValidationError(f"{handle} is not an index maintainer (maintainers.toml): only index maintainers "
                                  "review new plugins")
    elif handle not in plugin_maint and handle not in index_maint:
        raise ValidationError(f"{handle} is neither a maintainer of {m.name} nor an index maintainer")
    elif decision == "approve" and handle not in plugin_maint:
        raise ValidationError(f"a new version of {m.name} is approved by one of its maintainers "
                              f"({', '.join(sorted(plugin_maint))})")
    path, digest_, sig = sign_review(index_root, entry, handle, decision, subject, reason)
    problems = [p for p in check_index(_reload(index_root)) if p.level == "error"
                and f"/plugins/{entry.folder}/" in "/" + p.path + "/"]
    state = ("blocked" if decision == "block" else "changes-requested" if decision == "request-changes"
             else "approved" if not problems else "open")
    if record:
        from llmos_community import records

        records.record_review(m.name, subject, handle, decision, digest_, sig, reason, state)
    return {"plugin": m.name, "subject": subject, "decision": decision, "digest": digest_, "path": str(path),
            "status": state, "remaining": [str(p) for p in problems]}


def status(index_root: Path | None, name: str | None = None) -> dict[str, Any]:
    """Submissions and reviews recorded in the database, and the entry's check state."""
    from llmos_community import records
    from llmos_community.check import check_index

    out: dict[str, Any] = {"submissions": records.submissions(name)}
    if index_root is not None and Path(index_root).is_dir():
        index = _reload(Path(index_root))
        problems = check_index(index)
        if name is not None:
            entry = index.find(name)
            problems = [p for p in problems if f"/plugins/{entry.folder}/" in "/" + p.path + "/"]
            out["index"] = {"name": entry.manifest.name, "versions": sorted(entry.versions),
                            "reviews": [{"handle": r.handle, "subject": r.subject,
                                         "decision": r.model.decision if r.model else "?"} for r in entry.reviews]}
        out["problems"] = [p.to_dict() for p in problems]
    return out


def yank(name: str, version: str, index_root: Path, *, reason: str = "", undo: bool = False) -> Path:
    """Mark a release yanked (PEP 592) with a reason, or undo a yank. Only the
    ``yanked``/``yanked_reason`` fields change, so no approval goes stale; the pull
    request is reviewed like any other."""
    import tomllib

    index_root = Path(index_root)
    entry = _reload(index_root).find(name)
    if version not in entry.versions:
        raise NotFoundError(f"{entry.manifest.name} has no version {version} (versions: "
                            f"{', '.join(sorted(entry.versions)) or 'none'})")
    if not undo and not reason.strip():
        raise ValidationError("a yank needs a reason: --reason \"broken release\" (or a compatibility or security problem)")
    path = index_root / "plugins" / entry.folder / "versions" / f"{version}.toml"
    data = tomllib.loads(path.read_text())
    if undo:
        data.pop("yanked", None)
        data.pop("yanked_reason", None)
    else:
        data["yanked"], data["yanked_reason"] = True, reason.strip()
    _write(path, dump_toml(data))
    return path


# -- in-tree (standard) plugins: released without any key -----------------------------


def find_in_tree(repo: Path, dist: str) -> str:
    """``plugins/<folder>`` of the repository whose pyproject names distribution ``dist``."""
    import tomllib

    for py in sorted(Path(repo, "plugins").glob("*/pyproject.toml")):
        try:
            name = tomllib.loads(py.read_text()).get("project", {}).get("name", "")
        except tomllib.TOMLDecodeError:
            continue
        if names.normalize(str(name)) == names.normalize(dist):
            return py.parent.relative_to(repo).as_posix()
    raise NotFoundError(f"no plugins/*/pyproject.toml in {repo} names the distribution {dist!r}")


def release_in_tree(dist: str, index_root: Path, *, commit: str = "HEAD", wheelhouse: Path | None = None
                    ) -> SubmitResult:
    """Write (or update) the in-tree entry of standard plugin ``dist`` for the version in
    its ``pyproject.toml`` at ``commit``: the git tree of ``plugins/<dist>``, and the
    SHA-256 and size of the wheel built from exactly that tree. No key is involved: the
    pull request that adds it is reviewed like any core change, and ``llmos index
    check`` rebuilds the wheel from the tree and compares."""
    import setuptools

    from llmos_community import project as proj
    from llmos_community.schema import PluginManifest, VersionManifest

    index_root = Path(index_root).resolve()
    repo_s = proj.git_out(index_root, "rev-parse", "--show-toplevel")
    if not repo_s:
        raise ValidationError(f"{index_root} is not inside a git clone of the llmos repository")
    repo = Path(repo_s)
    full = proj.git_out(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if not full:
        raise NotFoundError(f"no commit {commit!r} in {repo}")
    subdir = find_in_tree(repo, dist)
    tree = proj.resolve_tree(repo, None, full, subdir)
    if tree is None:
        raise ValidationError(f"{subdir} is not committed at {commit}: commit the plugin first (the entry names "
                              "the git tree its wheel is built from)")
    epoch = int(proj.git_out(repo, "log", "-1", "--format=%ct", full, "--", subdir) or 315532800)
    out = Path(wheelhouse) if wheelhouse else repo / "dist" / "wheelhouse"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmos-release-") as tmp:
        src = proj.export_tree(repo, tree, Path(tmp) / "src")
        project = proj.read_project(src)
        wheel = proj.build_wheel(src, out, epoch=epoch)
        from llmos_community.wheels import read_wheel, refuse_startup_hooks

        refuse_startup_hooks(read_wheel(wheel))
        stages, comps = proj.describe_components(project)
        apis = sorted({getattr(m, "LLMOS_API", 1) for m in proj.load_hook_modules(project).values()})
        readme = (src / "README.md").read_text() if (src / "README.md").exists() else None
    sha, size = proj.file_sha256(wheel)
    name, version = project.name, project.version
    meta = project.meta
    version_doc = {
        "version": version, "released": _today(), "requires_python": meta.get("requires-python"),
        "requirements": list(meta.get("dependencies", [])), "entry_points": project.entry_points,
        "artifact": {"url": wheel.name, "sha256": sha, "size": size},
        "source": {"repository": ".", "commit": full, "subdirectory": subdir, "tree": tree},
        "build": {"command": "pip wheel --no-deps --no-build-isolation",
                  "backend": f"setuptools {setuptools.__version__}", "source_date_epoch": epoch},
        "notes": "",
    }
    VersionManifest.model_validate(_clean(version_doc))
    folder = index_root / "plugins" / names.normalize(name)
    index = _reload(index_root)
    existing = index.plugins.get(names.normalize(name))
    if existing is not None and existing.manifest is not None and existing.manifest.origin != "in-tree":
        raise ConflictError(f"{name} is a community entry in the index; an in-tree entry cannot replace it")
    written: list[Path] = []
    vpath = folder / "versions" / f"{version}.toml"
    if existing is not None and version in existing.versions:
        old = signing.frozen_version(existing.versions[version].raw or {})
        new = signing.frozen_version(_clean(version_doc))
        for d in (old, new):
            d.pop("released", None)
            d["source"] = {k: v for k, v in d.get("source", {}).items() if k in ("repository", "subdirectory")}
            d.pop("build", None)
        same_tree = proj.resolve_tree(repo, existing.versions[version].raw.get("source", {}).get("tree"),
                                      existing.versions[version].raw.get("source", {}).get("commit"), subdir)
        if old != new or same_tree != tree:
            raise ConflictError(f"{name} {version} is already released with other contents: a release never "
                                f"changes; bump the version in {subdir}/pyproject.toml, commit, and run this again")
        kind = "unchanged"
    else:
        _write(vpath, dump_toml(version_doc, f"# {name} {version}: built from git tree {tree} of {subdir}"))
        written.append(vpath)
        kind = "new-version" if existing is not None else "new-plugin"
    urls = {k.lower(): v for k, v in (meta.get("urls") or {}).items()}
    lic = meta.get("license")
    lic = lic if isinstance(lic, str) else (lic or {}).get("text") if isinstance(lic, dict) else None
    plugin_doc = {
        "name": name,
        "summary": _summary(meta.get("description") or name),
        "description_file": "README.md",
        "license": lic or "Apache-2.0",
        "authors": [{"name": str(a.get("name")), "email": a.get("email")} for a in meta.get("authors", [])]
        or [{"name": "llmos developers"}],
        "origin": "in-tree",
        "urls": {"homepage": urls.get("homepage"), "source": ".", "issues": urls.get("issues")},
        "keywords": list(meta.get("keywords", [])),
        "stages": stages,
        "components": comps,
        "api_versions": apis,
        "status": existing.manifest.status if existing is not None and existing.manifest else "active",
        "security_contact": "GOVERNANCE.md#security-policy",
        "added": existing.manifest.added if existing is not None and existing.manifest else _today(),
    }
    if existing is not None and existing.manifest is not None and existing.manifest.deprecation is not None:
        plugin_doc["deprecation"] = existing.manifest.deprecation.model_dump()
    PluginManifest.model_validate(_clean(plugin_doc))
    ppath = folder / "plugin.toml"
    text = dump_toml(plugin_doc, f"# standard plugin {name}: in-tree entry (llmos index release-standard)")
    if not ppath.exists() or ppath.read_text() != text:
        _write(ppath, text)
        written.append(ppath)
    desc = folder / "README.md"
    desc_text = readme if readme is not None else f"# {name}\n\n{plugin_doc['summary']}\n"
    if not desc.exists() or desc.read_text() != desc_text:
        _write(desc, desc_text)
        written.append(desc)
    for stale in sorted((folder / "reviews").rglob("*.toml")) if (folder / "reviews").is_dir() else []:
        stale.unlink()
        written.append(stale)
    if (folder / "reviews").is_dir():
        shutil.rmtree(folder / "reviews")
    return SubmitResult(name, version, kind, signing.version_digest(name, _clean(version_doc)),
                        [str(p) for p in written])


# -- maintainers.toml: approvals and key rotation --------------------------------------


def _maintainers_path(index_root: Path) -> Path:
    path = Path(index_root) / "maintainers.toml"
    if not path.is_file():
        raise NotFoundError(f"{index_root} is not a plugin index (no maintainers.toml): pass --index registry/")
    return path


def approve_maintainers(handle: str, index_root: Path, *, private_key: Any = None) -> dict[str, Any]:
    """Sign an approval of ``maintainers.toml`` as it is now (``maintainers-approvals/<handle>.toml``).

    A change to maintainers.toml needs such approvals from the core maintainers as of
    the base revision (GOVERNANCE.md); any later edit of the file makes them stale."""
    import tomllib

    from llmos_community.index import MAINTAINER_REVIEWS_DIR

    path = _maintainers_path(index_root)
    raw = tomllib.loads(path.read_text())
    digest_ = signing.maintainers_digest(raw)
    key = private_key if private_key is not None else signing.load_private_key(handle)
    msg = signing.review_message(*signing.MAINTAINERS_SUBJECT, "approve", digest_, "", handle)
    record = {"handle": handle, "decision": "approve", "subject": "maintainers", "covers": [], "digest": digest_,
              "reason": "", "signed_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
              "signature": signing.sign(key, msg)}
    out = Path(index_root) / MAINTAINER_REVIEWS_DIR / f"{handle}.toml"
    _write(out, dump_toml(record, f"# approval of maintainers.toml by {handle}, signed with ed25519 (llmos contrib)"))
    return {"handle": handle, "digest": digest_, "path": str(out)}


def _write_maintainers(path: Path, raw: dict[str, Any]) -> None:
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    _write(path, dump_toml(raw, "\n".join(header)))


def rotate_key(handle: str, index_root: Path, *, lost: bool = False, revoke: bool = False,
               reason: str = "") -> dict[str, Any]:
    """Give ``handle`` a new key in maintainers.toml; the old one moves to ``previous_keys``.

    - planned rotation (the old private key is here): the old key signs the approval of
      the change, counting as ``handle``'s approval as of the base;
    - ``lost``: the old private key is gone: no self-approval, the other core maintainers
      approve the change;
    - ``revoke`` (a compromised key): what the old key signed stops verifying; those
      entries need fresh approvals.
    The new private key replaces ``$LLMOS_HOME/keys/<handle>.key``; a planned
    rotation keeps the old one as ``<handle>.key.retired-<timestamp>``."""
    import tomllib

    path = _maintainers_path(index_root)
    raw = tomllib.loads(path.read_text())
    entry = next((m for m in raw.get("maintainer", []) if m.get("handle") == handle), None)
    if entry is None:
        raise NotFoundError(f"{handle} is not in {path}: only listed maintainers rotate a key")
    if revoke and not reason.strip():
        raise ValidationError("a revocation needs a reason: --reason \"key leaked\"")
    old_key = None
    if not lost:
        old_key = signing.load_private_key(handle)
        if signing.public_key_of(old_key) != entry["public_key"]:
            raise ValidationError(f"{signing.key_path(handle)} is not the key maintainers.toml lists for {handle}; "
                                  "if that key is lost, pass --lost")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    kp = signing.key_path(handle)
    if kp.exists():
        os.replace(kp, kp.with_name(f"{handle}.key.retired-{stamp}"))
    new_pub = signing.generate_key(handle)
    prev = {"public_key": entry["public_key"], "retired": _today(), "revoked": bool(revoke)}
    if reason.strip() or lost:
        prev["reason"] = reason.strip() or "lost"
    entry["previous_keys"] = [*entry.get("previous_keys", []), prev]
    entry["public_key"] = new_pub
    _write_maintainers(path, raw)
    out: dict[str, Any] = {"handle": handle, "public_key": new_pub, "path": str(path), "approved": None}
    if old_key is not None:
        out["approved"] = approve_maintainers(handle, index_root, private_key=old_key)["path"]
    return out
