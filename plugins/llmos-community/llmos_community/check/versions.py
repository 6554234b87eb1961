"""Rules on releases: version form and order, immutability against base, yanks, artifacts, wheels.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmos_community import names, signing
from llmos_community.check.checker import Checker, rule
from llmos_community.index import Problem


def _parse_version(text: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text)
    except InvalidVersion:
        return None


@rule("version-pep440", "version-filename")
def check_version_form(c: Checker) -> Iterator[Problem]:
    for e in c.entries():
        for stem, doc in e.versions.items():
            if doc.model is None:
                continue
            v = _parse_version(doc.model.version)
            if v is None:
                yield Problem(doc.path, "version", "version-pep440", f"{doc.model.version!r} is not a PEP 440 version")
                continue
            if v.local is not None:
                yield Problem(doc.path, "version", "version-pep440",
                              f"{doc.model.version!r} has a local part (+...): only public versions are published")
                continue
            if str(v) != doc.model.version:
                yield Problem(doc.path, "version", "version-pep440",
                              f"write the version in normalized form {str(v)!r}, not {doc.model.version!r}")
            if stem != doc.model.version:
                yield Problem(doc.path, "version", "version-filename",
                              f"the file must be named versions/{doc.model.version}.toml")


@rule("version-order")
def check_version_order(c: Checker) -> Iterator[Problem]:
    """Release dates never go down as versions go up (a later release has a higher version)."""
    for e in c.entries():
        vs = sorted(((_parse_version(m.version), m) for m in e.valid_versions().values()
                     if _parse_version(m.version) is not None), key=lambda t: t[0])
        for (_, prev), (_, cur) in zip(vs, vs[1:]):
            if cur.released < prev.released:
                yield Problem(e.versions[cur.version].path if cur.version in e.versions else e.plugin.path,
                              "released", "version-order",
                              f"{cur.version} is higher than {prev.version} but was released earlier "
                              f"({cur.released} < {prev.released}): versions must strictly increase over time")


@rule("version-increasing", "version-immutable", "version-deleted", "plugin-removed-record")
def check_against_base(c: Checker) -> Iterator[Problem]:
    if c.base is None:
        return
    removed = {names.normalize(r.name) for r in (c.index.removed.model.removed
                                                  if c.index.removed and c.index.removed.model else [])}
    for folder, old in c.base.plugins.items():
        new = c.index.plugins.get(folder)
        if new is None:
            if folder not in removed:
                yield Problem(c.index.source.show(f"plugins/{folder}"), "-", "plugin-removed-record",
                              f"plugin {folder!r} was deleted without a record: add it to removed.toml "
                              "with a reason, a date and a link")
            continue
        for v, doc in old.versions.items():
            if v not in new.versions:
                yield Problem(c.index.source.show(f"plugins/{folder}/versions/{v}.toml"), "version",
                              "version-deleted", f"released version {v} was deleted; yank it instead "
                              "(yanked = true, yanked_reason = \"...\")")
            elif signing.frozen_version(doc.raw or {}) != signing.frozen_version(new.versions[v].raw or {}):
                changed = sorted(k for k in set(doc.raw or {}) | set(new.versions[v].raw or {})
                                 if (doc.raw or {}).get(k) != (new.versions[v].raw or {}).get(k)
                                 and k not in signing.MUTABLE_VERSION_FIELDS)
                yield Problem(new.versions[v].path, ",".join(changed) or "-", "version-immutable",
                              f"released version {v} was edited; a release never changes: publish a new version")
        old_max = max((pv for pv in (_parse_version(v) for v in old.versions) if pv is not None), default=None)
        if old_max is None:
            continue
        for v, doc in new.versions.items():
            pv = _parse_version(v)
            if v not in old.versions and pv is not None and pv <= old_max:
                yield Problem(doc.path, "version", "version-increasing",
                              f"new version {v} is not higher than the released {old_max}")


@rule("yank-reason")
def check_yank(c: Checker) -> Iterator[Problem]:
    for e in c.entries():
        for doc in e.versions.values():
            if doc.model is not None and doc.model.yanked and not (doc.model.yanked_reason or "").strip():
                yield Problem(doc.path, "yanked_reason", "yank-reason",
                              "a yanked version needs yanked_reason (broken release, broken compatibility, "
                              "security hole...)")


@rule("artifact-wheel", "entry-points")
def check_artifact(c: Checker) -> Iterator[Problem]:
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    for e in c.entries():
        for doc in e.versions.values():
            m = doc.model
            if m is None:
                continue
            filename = m.artifact.url.rstrip("/").rsplit("/", 1)[-1]
            try:
                wname, wver, _build, _tags = parse_wheel_filename(filename)
            except InvalidWheelFilename:
                yield Problem(doc.path, "artifact.url", "artifact-wheel",
                              f"{filename!r} is not a wheel: only wheels are installed, never a source build")
                continue
            if wname != canonicalize_name(e.manifest.name) or str(wver) != m.version:
                yield Problem(doc.path, "artifact.url", "artifact-wheel",
                              f"{filename!r} is not a wheel of {e.manifest.name} {m.version}")
            scheme = m.artifact.url.split("://", 1)[0] if "://" in m.artifact.url else ""
            if scheme not in ("", "https", "file"):
                yield Problem(doc.path, "artifact.url", "artifact-wheel",
                              f"artifact URLs must be https:// or file:// (got {scheme}://)")
            if not m.entry_points:
                yield Problem(doc.path, "entry_points", "entry-points",
                              "a plugin release declares at least one entry point in the `llmos` group")


def local_wheel(c: Checker, url: str) -> Any:
    """The wheel of ``url`` on this machine (a wheelhouse file or a file:// URL), or None."""
    import os
    import urllib.parse
    import urllib.request
    from pathlib import Path

    filename = url.rstrip("/").rsplit("/", 1)[-1]
    dirs = [Path(c.wheelhouse)] if c.wheelhouse else []
    dirs += [Path(p) for p in os.environ.get("LLMOS_WHEELHOUSE", "").split(os.pathsep) if p]
    for d in dirs:
        if (d / filename).is_file():
            return d / filename
    if url.startswith("file://"):
        p = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        return p if p.is_file() else None
    return None


@rule("wheel-startup-hook", "artifact-hash")
def check_wheels(c: Checker) -> Iterator[Problem]:
    """Release wheels found here (``--wheelhouse``, ``$LLMOS_WHEELHOUSE``, ``file://``)
    are opened: their hash is the reviewed one, their metadata names this plugin and
    version, and they carry no start-up hook (``.pth``, ``sitecustomize``, a script
    replacing a core command). ``llmos plugin install`` checks the same on every wheel."""
    from llmos_community import project as proj
    from llmos_community.wheels import check_identity, read_wheel
    from llmos.sdk import ValidationError

    for e in c.entries():
        for doc in e.versions.values():
            m = doc.model
            if m is None:
                continue
            path = local_wheel(c, m.artifact.url)
            if path is None:
                continue
            sha, size = proj.file_sha256(path)
            if (sha, size) != (m.artifact.sha256, m.artifact.size):
                yield Problem(doc.path, "artifact.sha256", "artifact-hash",
                              f"{path} has sha256 {sha[:16]}… and {size} bytes, the entry says "
                              f"{m.artifact.sha256[:16]}… and {m.artifact.size}")
                continue
            try:
                info = read_wheel(path)
                check_identity(info, e.manifest.name, m.version)
            except ValidationError as exc:
                yield Problem(doc.path, "artifact", "artifact-wheel", exc.message)
                continue
            if info.startup_hooks:
                yield Problem(doc.path, "artifact", "wheel-startup-hook",
                              f"{path.name} carries {'; '.join(info.startup_hooks)}: code that runs in every "
                              "Python process of the environment, even with the plugin disabled")
