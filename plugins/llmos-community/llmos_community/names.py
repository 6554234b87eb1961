"""Plugin names: validity, PEP 503 normalization, confusables and look-alikes.

Rules (GOVERNANCE.md, taken from PEP 503/508 and PyPI's ``check_project_name``):

- valid: ``^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`` (case-insensitive);
- names are compared after :func:`normalize` (``re.sub(r"[-_.]+", "-", name).lower()``);
- two names whose :func:`ultra_normalize` forms are equal are the same name
  (``l``/``i`` → ``1``, ``o`` → ``0``, separators dropped);
- a standard-library module name is refused;
- a name at edit distance ≤ 2 (a swap of two neighbours counts as one edit), with the
  same words in another order, or equal once ``llmos-`` prefixes and ``-plugin``
  style suffixes are stripped, is a *look-alike*: flagged, and it needs one more
  approval.
"""

from __future__ import annotations

import functools
import re
import sys

NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
PREFIXES = ("llmos-",)
SUFFIXES = ("-plugin", "-llmos", "-ext", "-extension")
LOOKALIKE_DISTANCE = 2


def is_valid(name: str) -> bool:
    """True when ``name`` is a valid distribution name (PEP 508)."""
    return bool(NAME_RE.match(name))


@functools.lru_cache(maxsize=4096)
def normalize(name: str) -> str:
    """PEP 503 normalization: runs of ``-_.`` become ``-``, lowercase."""
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=4096)
def ultra_normalize(name: str) -> str:
    """PyPI's confusable-collapsing form: no separators, ``l/i → 1``, ``o → 0``."""
    return re.sub(r"[-_.]+", "", name.lower()).translate(str.maketrans({"l": "1", "i": "1", "o": "0"}))


def is_stdlib(name: str) -> bool:
    """True when ``name`` is the name of a standard-library module."""
    mod = normalize(name).replace("-", "_")
    return mod in sys.stdlib_module_names


@functools.lru_cache(maxsize=4096)
def core(name: str) -> str:
    """The distinguishing part of a name: normalized, ``llmos-`` prefix and
    ``-plugin``-style suffixes removed (``llmos-foo-plugin`` → ``foo``)."""
    n = normalize(name)
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if n.startswith(p) and len(n) > len(p):
                n, changed = n[len(p):], True
        for s in SUFFIXES:
            if n.endswith(s) and len(n) > len(s):
                n, changed = n[: -len(s)], True
    return n


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Optimal-string-alignment distance: insert, delete, substitute, or swap two
    neighbours, each costing 1. With ``limit``, only a band of width ``limit`` around
    the diagonal is computed and ``limit + 1`` is returned once the distance is
    known to exceed it (names are compared pairwise, so this is the hot loop)."""
    if a == b:
        return 0
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    big = len(a) + len(b) + 1
    band = big if limit is None else limit
    prev2: list[int] | None = None
    prev = [j if j <= band else big for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [big] * (len(b) + 1)
        if i <= band:
            cur[0] = i
        lo, hi = max(1, i - band), min(len(b), i + band)
        ai = a[i - 1]
        for j in range(lo, hi + 1):
            bj = b[j - 1]
            v = prev[j - 1] + (ai != bj)
            if prev[j] + 1 < v:
                v = prev[j] + 1
            if cur[j - 1] + 1 < v:
                v = cur[j - 1] + 1
            if prev2 is not None and j > 1 and ai == b[j - 2] and a[i - 2] == bj and prev2[j - 2] + 1 < v:
                v = prev2[j - 2] + 1
            cur[j] = v
        if limit is not None and min(cur[lo - 1:hi + 1]) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1] if limit is None else min(prev[-1], limit + 1)


def lookalike_reason(new: str, existing: str) -> str | None:
    """Why ``new`` looks like ``existing`` (``None`` when it does not).

    Identical normalized names are *not* look-alikes (they are the same name; see
    :func:`same_name`).
    """
    a, b = normalize(new), normalize(existing)
    if a == b:
        return None
    if ultra_normalize(a) == ultra_normalize(b):
        return f"confusable with {existing!r} (same name once l/i/1 and o/0 and separators are folded)"
    ca, cb = core(a), core(b)
    if ca == cb:
        return f"same as {existing!r} up to an llmos- prefix or a -plugin suffix"
    if sorted(ca.split("-")) == sorted(cb.split("-")):
        return f"the words of {existing!r} in another order"
    # short names are too close to everything: only compare names with some substance
    if min(len(ca), len(cb)) >= 4:
        d = edit_distance(ca, cb, LOOKALIKE_DISTANCE)
        if d <= LOOKALIKE_DISTANCE:
            return f"{d} edit{'s' if d > 1 else ''} away from {existing!r}"
    return None


def same_name(a: str, b: str) -> bool:
    """True when two names collide: equal normalized or ultra-normalized forms."""
    return normalize(a) == normalize(b) or ultra_normalize(a) == ultra_normalize(b)
