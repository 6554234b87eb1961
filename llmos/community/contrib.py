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

from llmos.community import names, signing
from llmos.community.index import DirSource, Index, PluginEntry, load_index
from llmos.errors import ConflictError, NotFoundError, ValidationError


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
    from llmos.community.check import current_digest

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
    from llmos.community import project as proj
    from llmos.community.schema import PluginManifest, VersionManifest

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
        if not stages:
            raise ValidationError(f"{name} registers no component: its hook module must implement a "
                                  "llmos_register_* hook (check with: llmos plugin test PATH)")
        apis = sorted({getattr(m, "LLMOS_API", 1) for m in proj.load_hook_modules(project).values()})
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
        from llmos.community import records

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
    from llmos.community.check import check_index

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
        from llmos.community import records

        records.record_review(m.name, subject, handle, decision, digest_, sig, reason, state)
    return {"plugin": m.name, "subject": subject, "decision": decision, "digest": digest_, "path": str(path),
            "status": state, "remaining": [str(p) for p in problems]}


def status(index_root: Path | None, name: str | None = None) -> dict[str, Any]:
    """Submissions and reviews recorded in the database, and the entry's check state."""
    from llmos.community import records
    from llmos.community.check import check_index

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
