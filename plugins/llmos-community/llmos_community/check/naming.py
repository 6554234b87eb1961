"""Rules on plugin names: form, uniqueness, removed names, look-alikes.

Part of ``llmos index check`` (:mod:`llmos_community.check`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from llmos_community import names
from llmos_community.check.checker import NEW_PLUGIN_APPROVALS, REMOVED_NAME_QUARANTINE_DAYS, Checker, rule
from llmos_community.index import Problem


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
