"""Rules on reviews: signatures, approvals, consent, staleness, the scope of a change.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmos_community import signing
from llmos_community.check.checker import NEW_PLUGIN_APPROVALS, NEW_VERSION_APPROVALS, Checker, entry_state, rule
from llmos_community.index import PluginEntry, Problem


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
        if a is None or b is None or entry_state(c.index, a) != entry_state(c.base, b):
            changed.append(folder)
    if len(changed) > 1:
        yield Problem(c.index.source.show("plugins"), "-", "change-scope",
                      f"this change touches {len(changed)} plugins ({', '.join(changed)}): "
                      "a submission should change one plugin's folder", level="warning")
