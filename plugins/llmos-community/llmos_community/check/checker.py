"""The checker of ``llmos index check``: :class:`Checker` (the index, its base, today)
and :func:`rule`, which registers a check function under the rule ids it reports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
        return entry_state(self.index, entry) != entry_state(self.base, old)

    def run(self) -> list[Problem]:
        problems = list(self.index.problems)
        for _ids, fn in RULES:
            problems.extend(fn(self))
        return problems


def check_index(index: Index, base: Index | None = None, today: dt.date | None = None, *, rebuild: bool = False,
                wheelhouse: Any = None) -> list[Problem]:
    """All problems of ``index`` (errors and warnings), in rule order."""
    return Checker(index, base, today or dt.date.today(), rebuild=rebuild, wheelhouse=wheelhouse).run()


def entry_state(index: Index, e: PluginEntry) -> list[tuple[str, bytes]]:
    return [(f, index.source.read(f"plugins/{e.folder}/{f}")) for f in sorted(e.files)]


def rule_ids() -> list[str]:
    """Every rule id, in the order the checks run."""
    out = ["toml", "schema"]
    for ids, _fn in RULES:
        out.extend(i for i in ids.split(",") if i not in out)
    return out
