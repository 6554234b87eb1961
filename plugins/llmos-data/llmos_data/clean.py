"""Cleaning: Unicode normalisation, whitespace, length filters, exact and near-exact dedup.

Near-duplicate detection is MinHash with LSH banding, computed with numpy in one pass
per document (one-permutation hashing of character shingles, with densification of
empty bins), so its cost is linear in the text and it is fully deterministic: no
Python ``hash()``, no random state, the same corpus always keeps the same documents.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from typing import Any

_SPACES = re.compile(r"(?<=\S)[ \t\f\v\u00a0]{2,}|(?<=\S)[\t\f\v\u00a0]")
_TRAILING = re.compile(r"[ \t\f\v\u00a0]+(?=\n|$)")
_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")

_M64 = (1 << 64) - 1


def clean_text(text: str, *, normalize: str = "NFC", whitespace: bool = True) -> str:
    """Normalise one document: Unicode form, line endings, control characters and
    (optionally) runs of spaces inside lines, trailing spaces and 3+ blank lines.
    Leading indentation is kept. Each pass is skipped when a cheap test shows it
    has nothing to do (most text needs few of them)."""
    if normalize != "none" and not (text.isascii() or unicodedata.is_normalized(normalize, text)):
        text = unicodedata.normalize(normalize, text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isprintable() and _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    if whitespace:
        odd_space = "\t" in text or "\f" in text or "\v" in text or "\u00a0" in text
        if odd_space or "  " in text:
            text = _SPACES.sub(" ", text)
        if odd_space or " \n" in text:
            text = _TRAILING.sub("", text)
        if "\n\n\n" in text:
            text = _NEWLINES.sub("\n\n", text)
        text = text.strip()
    return text


def doc_hash(text: str) -> bytes:
    """sha256 of a document's UTF-8 bytes (exact dedup and the train/validation split)."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def is_validation(digest: bytes, fraction: float) -> bool:
    """Deterministic split: a document goes to validation when the first 8 bytes of
    its hash, as a fraction of 2**64, fall below ``fraction``."""
    return int.from_bytes(digest[:8], "big") < fraction * 2.0**64


class MinHasher:
    """MinHash signatures over the byte shingles of a text (numpy).

    Documents with up to :attr:`exact_limit` distinct shingles get classic MinHash
    (``num_perm`` hash functions); longer ones one-permutation hashing, whose cost is
    linear in the text. Two documents of very different lengths cannot be
    near-duplicates, so the two regimes never need to be compared precisely."""

    def __init__(self, num_perm: int = 64, shingle_size: int = 5) -> None:
        import numpy as np

        self.np = np
        self.num_perm = num_perm
        self.k = shingle_size
        # fixed odd multipliers (from a fixed seed): the hashes are the same on every run
        rng = np.random.Generator(np.random.PCG64(0x11A05))
        self._mul = (rng.integers(1, 2**63, size=shingle_size, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
        self._a = (rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) << np.uint64(1)) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
        #: documents with at most this many distinct shingles get classic MinHash
        self.exact_limit = 4096

    def signature(self, text: str) -> Any:
        np = self.np
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
        k = self.k
        if data.size < k:
            data = np.concatenate([data, np.zeros(k - data.size, dtype=np.uint64)])
        n = data.size - k + 1
        h = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(k):
                h ^= data[j : j + n] * self._mul[j]
                h = (h << np.uint64(7)) | (h >> np.uint64(57))
            # splitmix64 finaliser
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
        if h.size <= self.exact_limit:
            h = np.unique(h)
            # classic MinHash: num_perm hash functions (a*h + b) over every shingle
            with np.errstate(over="ignore"):
                return (h[:, None] * self._a[None, :] + self._b[None, :]).min(axis=0)
        # long documents: one-permutation hashing (linear time), empty bins densified
        bins = (h % np.uint64(self.num_perm)).astype(np.intp)
        values = h // np.uint64(self.num_perm)
        sig = np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        np.minimum.at(sig, bins, values)
        empty = sig == np.iinfo(np.uint64).max
        if empty.any() and not empty.all():  # borrow from the next non-empty bin
            idx = np.flatnonzero(~empty)
            nxt = np.searchsorted(idx, np.flatnonzero(empty)) % idx.size
            sig[empty] = sig[idx[nxt]] ^ np.uint64(0x9E3779B97F4A7C15)
        return sig


def jaccard_estimate(a: Any, b: Any) -> float:
    """Fraction of equal signature slots (an estimate of the Jaccard similarity)."""
    return float((a == b).mean())


class Deduplicator:
    """Streaming exact + near-exact dedup. Keeps only hashes per kept document: its
    sha256, its MinHash signature (4 bytes per value) and one key per LSH band —
    about 1 kB per document with the defaults, whatever the document's length."""

    def __init__(
        self,
        *,
        exact: bool = True,
        near: bool = True,
        threshold: float = 0.8,
        num_perm: int = 64,
        shingle_size: int = 5,
    ) -> None:
        from llmos_data.config import _bands

        self.exact = exact
        self.near = near
        self.threshold = threshold
        self._seen: set[bytes] = set()
        self._buckets: dict[int, int] = {}
        self._sigs: list = []  # chunks of _CHUNK signatures, low 32 bits of each value
        self._count = 0
        self.bands, self.rows = _bands(num_perm, threshold)
        self.hasher = MinHasher(num_perm, shingle_size) if near else None

    def check(self, text: str, digest: bytes) -> str | None:
        """Return ``None`` to keep the document (and remember it), or the drop reason
        (``"duplicate"`` or ``"near_duplicate"``). LSH candidates are verified: a
        document is a near-duplicate only if its estimated Jaccard similarity to a
        kept document reaches the threshold."""
        if self.exact and digest in self._seen:
            return "duplicate"
        if self.near and self.hasher is not None:
            sig = self.hasher.signature(text)
            keys = [
                (b << 56) | int.from_bytes(hashlib.blake2b(sig[b * self.rows : (b + 1) * self.rows].tobytes(),
                                                          digest_size=7).digest(), "little")
                for b in range(self.bands)
            ]
            low = sig.astype(self.hasher.np.uint32)
            candidates = {self._buckets[k] for k in keys if k in self._buckets}
            if any(jaccard_estimate(low, self._sig(c)) >= self.threshold for c in candidates):
                return "near_duplicate"
            idx = self._count
            if idx % _CHUNK == 0:
                self._sigs.append(self.hasher.np.empty((_CHUNK, low.size), dtype=self.hasher.np.uint32))
            self._sigs[-1][idx % _CHUNK] = low
            self._count += 1
            for k in keys:
                self._buckets.setdefault(k, idx)
        if self.exact:
            self._seen.add(digest)
        return None


    def _sig(self, idx: int):  # type: ignore[no-untyped-def]
        return self._sigs[idx // _CHUNK][idx % _CHUNK]


_CHUNK = 4096


class Stats:
    """Counters that end up in ``dataset.stats``."""

    def __init__(self) -> None:
        self.documents_read = 0
        self.bytes_read = 0
        self.documents_kept = 0
        self.bytes_kept = 0
        self.dropped: Counter[str] = Counter()
        self.split_documents: Counter[str] = Counter()
        self.split_bytes: Counter[str] = Counter()
        self.stopped_at_limit = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents_read": self.documents_read,
            "bytes_read": self.bytes_read,
            "documents_kept": self.documents_kept,
            "bytes_kept": self.bytes_kept,
            "documents_dropped": dict(sorted(self.dropped.items())),
            "documents": dict(self.split_documents),
            "bytes": dict(self.split_bytes),
            "stopped_at_limit": self.stopped_at_limit,
        }
