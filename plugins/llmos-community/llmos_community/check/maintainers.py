"""Rules on ``maintainers.toml``: its form, and signed approval of every change to it.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmos_community import signing
from llmos_community.check.checker import NEW_PLUGIN_APPROVALS, Checker, rule
from llmos_community.index import Problem


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
