"""``llmos index check``: the rules of GOVERNANCE.md as code, one function per rule.

Every function takes a :class:`Checker` and yields :class:`~llmos_community.index.Problem`
records (``path: field: rule: message``). A *warning* is a flag (it is shown and it
raises the number of approvals needed), an *error* fails the check.

Rules that compare with what was already merged (immutability, strictly increasing
versions, deletions) need ``base`` — the index at a git ref (``--base origin/main``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmos_community import names, signing
from llmos_community.index import Index, PluginEntry, Problem

NEW_PLUGIN_APPROVALS = 2
NEW_VERSION_APPROVALS = 1
REMOVED_NAME_QUARANTINE_DAYS = 365

RULES: list[tuple[str, Callable[..., Iterator[Problem]]]] = []


def rule(*ids: str) -> Callable[[Callable[..., Iterator[Problem]]], Callable[..., Iterator[Problem]]]:
    """Register a check function under the rule ids it reports."""

    def deco(fn: Callable[..., Iterator[Problem]]) -> Callable[..., Iterator[Problem]]:
        RULES.append((",".join(ids), fn))
        fn.rule_ids = ids  # type: ignore[attr-defined]
        return fn

    return deco


@dataclass
class Checker:
    index: Index
    base: Index | None = None
    today: dt.date = field(default_factory=dt.date.today)
    #: folder -> extra approvals needed (look-alike names), filled by check_lookalike
    extra_approvals: dict[str, int] = field(default_factory=dict)
    #: rebuild every in-tree release and compare its wheel (default: only releases new against base)
    rebuild: bool = False
    #: a directory of release wheels: those found there (or by file:// URL) are opened and
    #: checked (hash, metadata, start-up hooks); also $LLMOS_WHEELHOUSE
    wheelhouse: Any = None

    @property
    def repo(self) -> Any:
        """The git repository holding the index (None when it is not in one)."""
        if not hasattr(self, "_repo"):
            getter = getattr(self.index.source, "repository", None)
            self._repo = getter() if getter else None
        return self._repo

    def base_file(self, rel: str) -> bytes | None:
        """The bytes of index file ``rel`` at the base (None: no base, or not there)."""
        if self.base is None:
            return None
        try:
            return self.base.source.read(rel) if rel in self.base.source.files() else None
        except Exception:  # noqa: BLE001 - a missing file at base
            return None

    def unchanged_since_base(self, entry: PluginEntry, rel: str) -> bool:
        """True when plugin file ``rel`` (relative to the entry) is the same at base."""
        full = f"plugins/{entry.folder}/{rel}"
        old = self.base_file(full)
        return old is not None and old == self.index.source.read(full)

    def base_index_maintainers(self) -> dict[str, Any] | None:
        """Active index maintainers as of the base (None without base). Approvals only
        count from them: a change cannot add its own reviewers."""
        if self.base is None or self.base.maintainers is None or self.base.maintainers.model is None:
            return None
        return self.base.index_maintainers()

    def entries(self) -> list[PluginEntry]:
        return [e for e in self.index.plugins.values() if e.manifest is not None]

    def is_new(self, entry: PluginEntry) -> bool:
        return self.base is None or entry.folder not in self.base.plugins

    def changed(self, entry: PluginEntry) -> bool:
        """True when ``entry`` is new or differs from ``base`` (always True without base)."""
        if self.base is None or entry.folder not in self.base.plugins:
            return True
        old = self.base.plugins[entry.folder]
        return _entry_state(self.index, entry) != _entry_state(self.base, old)

    def run(self) -> list[Problem]:
        problems = list(self.index.problems)
        for _ids, fn in RULES:
            problems.extend(fn(self))
        return problems


def check_index(index: Index, base: Index | None = None, today: dt.date | None = None, *, rebuild: bool = False,
                wheelhouse: Any = None) -> list[Problem]:
    """All problems of ``index`` (errors and warnings), in rule order."""
    return Checker(index, base, today or dt.date.today(), rebuild=rebuild, wheelhouse=wheelhouse).run()


# -- maintainers --------------------------------------------------------------------


@rule("maintainers-schema", "maintainers-key", "maintainers-unique")
def check_maintainers(c: Checker) -> Iterator[Problem]:
    doc = c.index.maintainers
    if doc is None:
        yield Problem(c.index.source.show("maintainers.toml"), "-", "maintainers-schema",
                      "missing: the index needs a maintainers.toml listing its index maintainers and their keys")
        return
    if doc.model is None:
        return
    seen: set[str] = set()
    for i, m in enumerate(doc.model.maintainer):
        if m.handle in seen:
            yield Problem(doc.path, f"maintainer.{i}.handle", "maintainers-unique", f"{m.handle!r} is listed twice")
        seen.add(m.handle)
        try:
            signing.parse_public_key(m.public_key)
        except Exception as exc:  # noqa: BLE001
            yield Problem(doc.path, f"maintainer.{i}.public_key", "maintainers-key", str(exc))
    if sum(1 for m in doc.model.maintainer if "index" in m.roles and m.status == "active") < NEW_PLUGIN_APPROVALS:
        yield Problem(doc.path, "maintainer", "maintainers-schema",
                      f"fewer than {NEW_PLUGIN_APPROVALS} active index maintainers: new plugins could not be approved")


def _maintainer_changes(old: Any, new: Any) -> tuple[list[str], bool]:
    """What changed in maintainers.toml (``old`` → ``new``): readable lines, and whether
    anything was taken away (a maintainer, a role, active status), which needs 2/3."""
    before = {m.handle: m for m in old.maintainer}
    after = {m.handle: m for m in new.maintainer}
    lines, removal = [], False
    for h in sorted(set(after) - set(before)):
        lines.append(f"adds {h} ({'+'.join(after[h].roles)})")
    for h in sorted(set(before) - set(after)):
        lines.append(f"removes {h}")
        removal = True
    for h in sorted(set(before) & set(after)):
        a, b = before[h], after[h]
        if set(b.roles) < set(a.roles) or (set(a.roles) - set(b.roles)):
            lines.append(f"takes role(s) {', '.join(sorted(set(a.roles) - set(b.roles)))} from {h}")
            removal = True
        if set(b.roles) - set(a.roles):
            lines.append(f"gives {h} role(s) {', '.join(sorted(set(b.roles) - set(a.roles)))}")
        if a.status != b.status:
            lines.append(f"makes {h} {b.status}")
            removal = removal or b.status != "active"
        if a.public_key != b.public_key:
            lines.append(f"changes {h}'s key")
        if a.model_dump(exclude={"roles", "status", "public_key"}) != b.model_dump(exclude={"roles", "status",
                                                                                             "public_key"}):
            lines.append(f"edits {h}'s entry")
    return lines or ["reformats it"], removal


@rule("maintainers-approval")
def check_maintainers_change(c: Checker) -> Iterator[Problem]:
    """A change to maintainers.toml (against ``--base``) carries signed approvals by a
    simple majority of the core maintainers *as of the base* (2/3 when it removes a
    maintainer, a role or active status), verified with their keys as of the base.
    Approvals by maintainers the change itself adds do not count."""
    old_doc, new_doc = (c.base.maintainers if c.base else None), c.index.maintainers
    if c.base is None or old_doc is None or old_doc.model is None or new_doc is None or new_doc.model is None:
        return  # no base, or no maintainers at the base (the first file bootstraps the index)
    if signing.canonical_json(old_doc.raw) == signing.canonical_json(new_doc.raw):
        return
    core = c.base.core_maintainers()
    changes, removal = _maintainer_changes(old_doc.model, new_doc.model)
    need = -(-2 * len(core) // 3) if removal else len(core) // 2 + 1
    want = signing.maintainers_digest(new_doc.raw or {})
    valid: list[str] = []
    ignored: list[str] = []
    for doc in c.index.maintainer_reviews:
        r = doc.model
        if r is None:
            continue
        if r.handle != doc.handle or r.subject != "maintainers":
            ignored.append(f"{doc.handle} (file name and handle differ)")
            continue
        if r.handle not in core:
            added = "added by this change" if r.handle not in {m.handle for m in old_doc.model.maintainer} else \
                "not an active core maintainer"
            ignored.append(f"{r.handle} ({added} as of the base)")
            continue
        if r.decision != "approve":
            ignored.append(f"{r.handle} ({r.decision})")
            continue
        if r.digest != want:
            ignored.append(f"{r.handle} (stale: approved another version of maintainers.toml)")
            continue
        msg = signing.review_message(*signing.MAINTAINERS_SUBJECT, r.decision, r.digest, r.reason, r.handle)
        if not signing.verify(core[r.handle].public_key, msg, r.signature):
            ignored.append(f"{r.handle} (signature does not verify with their key as of the base)")
            continue
        valid.append(r.handle)
    if len(valid) < need:
        rule_text = "2/3" if removal else "a simple majority"
        yield Problem(new_doc.path, "maintainer", "maintainers-approval",
                      f"this change {'; '.join(changes)}: it needs approvals by {rule_text} ({need}) of the "
                      f"{len(core)} core maintainers as of the base ({', '.join(sorted(core)) or 'none'}); valid: "
                      f"{', '.join(sorted(valid)) or 'none'}"
                      + (f"; not counted: {', '.join(ignored)}" if ignored else "")
                      + " (each runs: llmos contrib approve-maintainers --handle HANDLE)")


# -- names ----------------------------------------------------------------------------


@rule("name-valid", "name-folder", "name-stdlib")
def check_name_form(c: Checker) -> Iterator[Problem]:
    for e in c.entries():
        name = e.manifest.name
        if not names.is_valid(name):
            yield Problem(e.plugin.path, "name", "name-valid",
                          f"{name!r} is not a valid distribution name: letters, digits and . _ - only, "
                          "starting and ending with a letter or digit")
            continue
        if e.folder != names.normalize(name):
            yield Problem(e.plugin.path, "name", "name-folder",
                          f"the folder must be the normalized name {names.normalize(name)!r}, not {e.folder!r}")
        if names.is_stdlib(name):
            yield Problem(e.plugin.path, "name", "name-stdlib",
                          f"{name!r} is a standard-library module name; choose another name")


@rule("name-unique", "name-confusable")
def check_name_unique(c: Checker) -> Iterator[Problem]:
    entries = c.entries()
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            if names.normalize(a.manifest.name) == names.normalize(b.manifest.name):
                yield Problem(b.plugin.path, "name", "name-unique",
                              f"{b.manifest.name!r} is the same name as {a.manifest.name!r} after normalization")
            elif names.ultra_normalize(a.manifest.name) == names.ultra_normalize(b.manifest.name):
                later = b if (b.manifest.added, b.folder) >= (a.manifest.added, a.folder) else a
                other = a if later is b else b
                if c.base is not None and not c.is_new(b) and c.is_new(a):
                    later, other = a, b
                yield Problem(later.plugin.path, "name", "name-confusable",
                              f"{later.manifest.name!r} is confusable with {other.manifest.name!r} "
                              "(l/i/1, o/0 and separators fold to the same name); choose a distinct name")


@rule("name-removed")
def check_name_removed(c: Checker) -> Iterator[Problem]:
    doc = c.index.removed
    if doc is None or doc.model is None:
        return
    for e in c.entries():
        for r in doc.model.removed:
            age = (c.today - r.date).days
            if names.same_name(e.manifest.name, r.name) and age < REMOVED_NAME_QUARANTINE_DAYS:
                free = r.date + dt.timedelta(days=REMOVED_NAME_QUARANTINE_DAYS)
                yield Problem(e.plugin.path, "name", "name-removed",
                              f"{r.name!r} was removed on {r.date} ({r.reason}); the name is free again on {free}")


@rule("name-lookalike")
def check_lookalike(c: Checker) -> Iterator[Problem]:
    entries = c.entries()
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            if names.same_name(a.manifest.name, b.manifest.name):
                continue  # reported by name-unique / name-confusable
            if names.lookalike_reason(a.manifest.name, b.manifest.name) is None:
                continue
            # the newer entry is the look-alike: new against --base, else the later 'added'
            ka, kb = (a.manifest.added, a.folder), (b.manifest.added, b.folder)
            if c.base is not None and c.is_new(a) != c.is_new(b):
                newer = [a] if c.is_new(a) else [b]
            elif c.base is not None and not c.is_new(a):
                newer = []  # both merged already: flagged when they were submitted
            else:
                newer = [a] if ka > kb else [b] if kb > ka else [a, b]
            for e in newer:
                other = b if e is a else a
                c.extra_approvals[e.folder] = 1
                yield Problem(e.plugin.path, "name", "name-lookalike",
                              f"{e.manifest.name!r} looks like "
                              f"{names.lookalike_reason(e.manifest.name, other.manifest.name)}: flagged; it needs "
                              f"{NEW_PLUGIN_APPROVALS + 1} index-maintainer approvals instead of "
                              f"{NEW_PLUGIN_APPROVALS}", level="warning")


# -- plugin manifest ------------------------------------------------------------------


@rule("license-spdx")
def check_license(c: Checker) -> Iterator[Problem]:
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    for e in c.entries():
        try:
            canonicalize_license_expression(e.manifest.license)
        except InvalidLicenseExpression:
            yield Problem(e.plugin.path, "license", "license-spdx",
                          f"{e.manifest.license!r} is not an SPDX license expression (e.g. Apache-2.0, MIT)")


@rule("description-file")
def check_description(c: Checker) -> Iterator[Problem]:
    for e in c.entries():
        desc = e.manifest.description_file
        if desc and desc not in e.files:
            yield Problem(e.plugin.path, "description_file", "description-file",
                          f"{desc!r} is not in the plugin folder; add it or fix the field")


@rule("components-stage")
def check_components(c: Checker) -> Iterator[Problem]:
    from llmos.components import ComponentRef
    from llmos.errors import ValidationError

    for e in c.entries():
        for i, ref in enumerate(e.manifest.components):
            try:
                parsed = ComponentRef.parse(ref)
            except ValidationError as exc:
                yield Problem(e.plugin.path, f"components.{i}", "components-stage", exc.message)
                continue
            if parsed.stage not in e.manifest.stages:
                yield Problem(e.plugin.path, f"components.{i}", "components-stage",
                              f"{ref!r} is in stage {parsed.stage!r}, which is not listed in stages")


@rule("deprecation-reason", "deprecation-successor")
def check_deprecation(c: Checker) -> Iterator[Problem]:
    folders = {names.normalize(e.manifest.name) for e in c.entries()}
    for e in c.entries():
        m = e.manifest
        if m.status == "deprecated" and (m.deprecation is None or not m.deprecation.reason):
            yield Problem(e.plugin.path, "deprecation.reason", "deprecation-reason",
                          "a deprecated plugin needs [deprecation] reason = \"...\" (and a successor if there is one)")
        if m.deprecation is not None and m.deprecation.successor:
            if names.normalize(m.deprecation.successor) not in folders:
                yield Problem(e.plugin.path, "deprecation.successor", "deprecation-successor",
                              f"successor {m.deprecation.successor!r} is not in the index")


# -- versions -------------------------------------------------------------------------


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
    from llmos.errors import ValidationError

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


# -- in-tree (standard) plugins -------------------------------------------------------

_BUILT: dict[tuple[str, str, int], tuple[str, int, list[str]] | str] = {}


def _rebuild(c: Checker, tree: str, epoch: int) -> tuple[str, int, list[str]] | str:
    """(sha256, size, start-up hooks) of the wheel built from ``tree`` (cached per
    process), or why it could not be built."""
    import tempfile
    from pathlib import Path

    from llmos_community import project as proj
    from llmos_community.wheels import read_wheel
    from llmos.errors import LlmosError

    key = (str(c.repo), tree, epoch)
    if key not in _BUILT:
        try:
            with tempfile.TemporaryDirectory(prefix="llmos-rebuild-") as tmp:
                wheel = proj.build_from_tree(c.repo, tree, Path(tmp), epoch)
                _BUILT[key] = (*proj.file_sha256(wheel), read_wheel(wheel).startup_hooks)
        except LlmosError as exc:
            _BUILT[key] = exc.message
    return _BUILT[key]


@rule("maintainers-listed", "in-tree-source", "in-tree-build", "in-tree-reviews")
def check_in_tree(c: Checker) -> Iterator[Problem]:
    """An in-tree entry is a standard plugin of this repository: each release names the
    git tree of ``plugins/<dist>`` it was built from, that tree holds the plugin at that
    version, and its wheel rebuilt from the tree has the recorded SHA-256 (releases new
    against ``--base``, or all with ``--rebuild``). No signature and no key: the
    repository's review is the approval."""
    import tomllib

    import setuptools

    from llmos_community import project as proj

    for e in c.entries():
        if e.manifest.origin != "in-tree":
            if not e.manifest.maintainers:
                yield Problem(e.plugin.path, "maintainers", "maintainers-listed",
                              "a community entry lists at least one maintainer with a public key")
            continue
        if e.reviews:
            yield Problem(e.reviews[0].path, "-", "in-tree-reviews",
                          f"{e.manifest.name} is an in-tree entry: it is approved by the repository's review, "
                          f"not by signatures; delete plugins/{e.folder}/reviews/")
        for v, doc in sorted(e.versions.items()):
            m = doc.model
            if m is None:
                continue
            src = m.source
            if src.repository != "." or not (src.subdirectory or "").startswith("plugins/"):
                yield Problem(doc.path, "source", "in-tree-source",
                              "an in-tree release is built from this repository: source.repository = \".\" and "
                              "source.subdirectory = \"plugins/<dist>\"")
                continue
            if c.repo is None:
                yield Problem(doc.path, "source", "in-tree-source",
                              f"cannot verify {e.manifest.name} {v}: the index is not inside a git clone of the "
                              "llmos repository", level="warning")
                continue
            tree = proj.resolve_tree(c.repo, src.tree, src.commit, src.subdirectory)
            if tree is None:
                yield Problem(doc.path, "source.tree", "in-tree-source",
                              f"neither tree {src.tree or '-'} nor {src.commit}:{src.subdirectory} is in this "
                              "repository (a shallow clone? run: git fetch --unshallow)")
                continue
            if src.tree and src.commit:
                at_commit = proj.resolve_tree(c.repo, None, src.commit, src.subdirectory)
                if at_commit is not None and at_commit != src.tree:
                    yield Problem(doc.path, "source.tree", "in-tree-source",
                                  f"tree {src.tree[:12]} is not {src.subdirectory} at commit {src.commit[:12]} "
                                  f"({at_commit[:12]})")
                    continue
            text = proj.git_out(c.repo, "show", f"{tree}:pyproject.toml")
            meta = tomllib.loads(text).get("project", {}) if text else {}
            if names.normalize(str(meta.get("name", ""))) != e.folder or str(meta.get("version")) != v:
                yield Problem(doc.path, "source.tree", "in-tree-source",
                              f"the recorded tree holds {meta.get('name', '?')} {meta.get('version', '?')}, not "
                              f"{e.manifest.name} {v}")
                continue
            is_new = c.base is not None and not c.unchanged_since_base(e, f"versions/{v}.toml")
            if not (c.rebuild or is_new):
                continue
            backend = f"setuptools {setuptools.__version__}"
            if m.build is None or m.build.source_date_epoch is None:
                yield Problem(doc.path, "build", "in-tree-build",
                              "an in-tree release records build.source_date_epoch and build.backend")
                continue
            if m.build.backend != backend:
                yield Problem(doc.path, "build.backend", "in-tree-build",
                              f"cannot rebuild {e.manifest.name} {v} byte for byte here: it was built with "
                              f"{m.build.backend}, this environment has {backend}", level="warning")
                continue
            built = _rebuild(c, tree, m.build.source_date_epoch)
            if isinstance(built, str):
                yield Problem(doc.path, "source.tree", "in-tree-build", built)
                continue
            if built[2]:
                yield Problem(doc.path, "artifact", "wheel-startup-hook",
                              f"the wheel built from tree {tree[:12]} carries {'; '.join(built[2])}")
            if built[:2] != (m.artifact.sha256, m.artifact.size):
                yield Problem(doc.path, "artifact.sha256", "in-tree-build",
                              f"the wheel rebuilt from tree {tree[:12]} has sha256 {built[0][:16]}… and "
                              f"{built[1]} bytes, the entry says {m.artifact.sha256[:16]}… and {m.artifact.size}: "
                              f"record what the tree builds (llmos index release-standard {e.manifest.name})")


# -- reviews, approvals, consent ------------------------------------------------------


@dataclass
class _Verdict:
    doc: Any
    valid: bool
    stale: bool
    key_known: bool


def _review_digest(e: PluginEntry, subject: str, covers: list[str]) -> str | None:
    if subject == "plugin":
        if any(v not in e.versions for v in covers):
            return None
        return signing.plugin_digest(e.manifest.name, e.plugin.raw or {}, e.raw_versions(covers),
                                     e.description_sha256)
    if subject not in e.versions:
        return None
    return signing.version_digest(e.manifest.name, e.versions[subject].raw or {})


def current_digest(e: PluginEntry, subject: str = "plugin", covers: list[str] | None = None) -> str:
    """The digest a reviewer signs now (``covers`` defaults to every version)."""
    if subject == "plugin":
        covers = sorted(e.versions) if covers is None else covers
    d = _review_digest(e, subject, covers or [])
    if d is None:
        raise KeyError(subject)
    return d


def _key_for(c: Checker, e: PluginEntry, handle: str, subject: str, decision: str) -> str | None:
    plugin_keys = {m.handle: m.public_key for m in e.manifest.maintainers}
    index_keys = {h: m.public_key for h, m in c.index.index_maintainers(emeritus=True).items()}
    if decision == "consent" or (subject != "plugin" and handle in plugin_keys):
        return plugin_keys.get(handle)
    return index_keys.get(handle) or plugin_keys.get(handle)


def _previous_keys(c: Checker, handle: str) -> list[Any]:
    m = c.index.index_maintainers(emeritus=True).get(handle)
    return list(m.previous_keys) if m is not None else []


def _verdicts(c: Checker, e: PluginEntry) -> Iterator[tuple[_Verdict, Problem | None]]:
    for doc in e.reviews:
        r = doc.model
        if r is None:
            continue
        if r.handle != doc.handle or r.subject != doc.subject:
            yield _Verdict(doc, False, False, False), Problem(
                doc.path, "handle", "review-schema",
                f"a review of {r.handle!r} on {r.subject!r} must be stored as reviews/{r.subject}/{r.handle}.toml")
            continue
        key = _key_for(c, e, r.handle, r.subject, r.decision)
        if key is None:
            who = "a listed maintainer of this plugin" if r.decision == "consent" else "an index maintainer"
            yield _Verdict(doc, False, False, False), Problem(
                doc.path, "handle", "approver-unknown", f"{r.handle!r} is not {who}; their review does not count")
            continue
        msg = signing.review_message(e.manifest.name, r.subject, r.decision, r.digest, r.reason, r.handle)
        if not signing.verify(key, msg, r.signature):
            # a key rotated away keeps verifying what was merged while it was current;
            # a revoked (compromised) key verifies nothing, and new reviews use the current key
            rel = doc.path.split(f"plugins/{e.folder}/", 1)[-1]
            old = next((p for p in _previous_keys(c, r.handle) if signing.verify(p.public_key, msg, r.signature)),
                       None)
            merged = c.base is None or c.unchanged_since_base(e, rel)
            if old is not None and not old.revoked and merged:
                yield _Verdict(doc, True, False, True), None
                continue
            why = ("the signature does not verify with {h!r}'s public key in the index (signed with another key, "
                   "or the record was edited)")
            if old is not None and old.revoked:
                why = "signed with {h!r}'s revoked key (" + (old.reason or "revoked") + "): ask {h} to review again"
            elif old is not None:
                why = "signed with {h!r}'s retired key: a new review is signed with the current key"
            yield _Verdict(doc, False, False, True), Problem(doc.path, "signature", "signature-invalid",
                                                             why.format(h=r.handle))
            continue
        expected = _review_digest(e, r.subject, r.covers)
        if expected is None:
            yield _Verdict(doc, False, True, True), Problem(
                doc.path, "subject", "approval-stale",
                f"{r.subject!r} or a covered version no longer exists; ask {r.handle} to review again")
            continue
        if expected != r.digest:
            problem = None
            if r.decision in ("approve", "consent"):
                problem = Problem(doc.path, "digest", "approval-stale",
                                  f"{r.handle}'s {r.decision} was for {r.digest[:19]}…, the entry is now "
                                  f"{expected[:19]}… (edited since): ask {r.handle} to review again "
                                  f"(llmos contrib {'review --decision consent' if r.decision == 'consent' else 'approve'} "
                                  f"{e.manifest.name})")
            yield _Verdict(doc, False, True, True), problem
            continue
        yield _Verdict(doc, True, False, True), None


@rule("review-schema", "approver-unknown", "signature-invalid", "approval-stale", "self-approval",
      "block-reason", "blocked", "changes-requested", "approvals-missing", "consent-missing",
      "version-approval-missing")
def check_reviews(c: Checker) -> Iterator[Problem]:
    active = c.index.index_maintainers()
    everyone = c.index.index_maintainers(emeritus=True)
    as_of_base = c.base_index_maintainers()
    for e in c.entries():
        if e.manifest.origin == "in-tree":
            continue  # approved by the repository's review (check_in_tree)
        # approvals by maintainers who have since gone emeritus keep counting for entries
        # merged before (unchanged against --base, or any entry without --base); new or
        # edited entries need approvals by active index maintainers, as of the base: a
        # change cannot add its own reviewers
        index_maint = active if c.base is not None and c.changed(e) else everyone
        if as_of_base is not None and c.changed(e):
            index_maint = {h: m for h, m in index_maint.items() if h in as_of_base}
        m = e.manifest
        owners = {p.handle for p in m.authors if p.handle} | {mm.handle for mm in m.maintainers}
        plugin_maint = {mm.handle for mm in m.maintainers}
        for mm in m.maintainers:
            try:
                signing.parse_public_key(mm.public_key)
            except Exception as exc:  # noqa: BLE001
                yield Problem(e.plugin.path, f"maintainers.{mm.handle}.public_key", "maintainers-key", str(exc))
        approvals: list[Any] = []
        consents: set[str] = set()
        version_approvals: dict[str, set[str]] = {}
        for verdict, problem in _verdicts(c, e):
            if problem is not None:
                yield problem
            r = verdict.doc.model
            if r.decision in ("block", "request-changes") and not r.reason.strip():
                yield Problem(verdict.doc.path, "reason", "block-reason",
                              f"a {r.decision} needs a written reason (--reason)")
            if r.decision == "block" and (verdict.valid or verdict.stale):  # signed: stands until withdrawn
                yield Problem(verdict.doc.path, "decision", "blocked",
                              f"blocked by {r.handle}: {r.reason or '(no reason)'}; resolve it with them")
            if not verdict.valid:
                continue
            if r.decision == "request-changes":
                yield Problem(verdict.doc.path, "decision", "changes-requested",
                              f"{r.handle} requested changes: {r.reason}")
            elif r.decision == "consent":
                if r.subject == "plugin":
                    consents.add(r.handle)
            elif r.decision == "approve" and r.subject == "plugin":
                if r.handle in owners:
                    yield Problem(verdict.doc.path, "handle", "self-approval",
                                  f"{r.handle} is an author or maintainer of {m.name} and cannot approve it; "
                                  "approvals must come from other index maintainers")
                elif r.handle in index_maint:
                    approvals.append(r)
                elif as_of_base is not None and r.handle not in as_of_base:
                    yield Problem(verdict.doc.path, "handle", "approver-unknown",
                                  f"{r.handle} is not an index maintainer as of the base: approvals by "
                                  "maintainers added in the same change do not count")
            elif r.decision == "approve":
                if r.handle in plugin_maint:
                    version_approvals.setdefault(r.subject, set()).add(r.handle)
        required = NEW_PLUGIN_APPROVALS + c.extra_approvals.get(e.folder, 0)
        have = sorted({a.handle for a in approvals})
        if len(have) < required:
            yield Problem(e.plugin.path, "reviews", "approvals-missing",
                          f"{m.name} needs {required} approvals by index maintainers who are not its authors "
                          f"(valid now: {', '.join(have) or 'none'})")
        for mm in m.maintainers:
            if mm.handle not in consents:
                yield Problem(e.plugin.path, f"maintainers.{mm.handle}", "consent-missing",
                              f"maintainer {mm.handle} has not signed their consent to the current entry "
                              f"(they run: llmos contrib review {m.name} --decision consent --handle {mm.handle})")
        # versions submitted with the plugin entry are covered by its approvals (and
        # reported above when those are missing); later ones need their own approval
        covered = {v for doc in e.reviews if doc.model is not None and doc.model.subject == "plugin"
                   and doc.model.decision in ("approve", "consent") for v in doc.model.covers}
        valid_covered = {v for a in approvals for v in a.covers}
        for v, doc in sorted(e.versions.items()):
            if v in covered and (v in valid_covered or len(have) < required):
                continue
            if len(version_approvals.get(v, set())) < NEW_VERSION_APPROVALS:
                yield Problem(doc.path, "reviews", "version-approval-missing",
                              f"{m.name} {v} needs an approval signed by one of its maintainers "
                              f"({', '.join(sorted(plugin_maint))}): llmos contrib approve {m.name} --version {v}")


@rule("change-scope")
def check_scope(c: Checker) -> Iterator[Problem]:
    """A pull request changes one plugin's folder (flagged, not failed: index maintainers
    also edit several entries, e.g. when bootstrapping the standard plugins)."""
    if c.base is None:
        return
    changed = []
    for folder in sorted(set(c.index.plugins) | set(c.base.plugins)):
        a, b = c.index.plugins.get(folder), c.base.plugins.get(folder)
        if a is None or b is None or _entry_state(c.index, a) != _entry_state(c.base, b):
            changed.append(folder)
    if len(changed) > 1:
        yield Problem(c.index.source.show("plugins"), "-", "change-scope",
                      f"this change touches {len(changed)} plugins ({', '.join(changed)}): "
                      "a submission should change one plugin's folder", level="warning")


def _entry_state(index: Index, e: PluginEntry) -> list[tuple[str, bytes]]:
    return [(f, index.source.read(f"plugins/{e.folder}/{f}")) for f in sorted(e.files)]


def rule_ids() -> list[str]:
    """Every rule id, in the order the checks run."""
    out = ["toml", "schema"]
    for ids, _fn in RULES:
        out.extend(i for i in ids.split(",") if i not in out)
    return out
