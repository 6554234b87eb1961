"""Content-addressed blob store: ``<root>/sha256/<2 hex>/<62 hex>``.

A blob is written to a temporary file in the same directory, fsynced, then renamed
into place (and the directory fsynced), so a blob path either does not exist or holds
exactly the bytes its name promises. Blobs are immutable and shared between versions;
``gc`` removes the ones no version references any more.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llmos.sdk import fsync_dir as _fsync_dir

CHUNK = 8 << 20


@dataclass
class BlobStats:
    """What an ingest wrote: ``written_bytes`` new bytes, ``reused_bytes`` already stored."""

    written_bytes: int = 0
    reused_bytes: int = 0
    written_blobs: int = 0
    reused_blobs: int = 0

    def add(self, other: BlobStats) -> None:
        self.written_bytes += other.written_bytes
        self.reused_bytes += other.reused_bytes
        self.written_blobs += other.written_blobs
        self.reused_blobs += other.reused_blobs


class BlobStore:
    """Blobs under ``root`` (normally ``$LLMOS_HOME/blobs``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / "sha256"
        self.tmp = self.root / "tmp"

    def path(self, digest: str) -> Path:
        return self.base / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def _reuse(self, digest: str) -> bool:
        """Is the blob stored? If so it is touched first: a reused blob is "fresh"
        again, so gc (which keeps what is newer than the oldest pin) leaves it alone,
        and it is checked again after the touch, in case gc removed it just before."""
        target = self.path(digest)
        if not target.is_file():
            return False
        try:
            os.utime(target)
        except OSError:
            return False
        return target.is_file()

    def remove_unless_touched(self, path: Path, seen_mtime_ns: int) -> int | None:
        """Remove the blob at ``path`` unless it was touched since its mtime was
        ``seen_mtime_ns``.

        The blob is first renamed aside and its mtime read again: a writer that touched
        it in between (reusing it) wins, and the blob goes back. A writer that looks
        for it after the rename finds it missing and writes it again. :returns: the
        bytes removed, or ``None`` if it was kept (or already gone).
        """
        aside = path.with_name(f".gc-{path.name}-{os.getpid()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return None
        try:
            st = os.stat(aside)
        except FileNotFoundError:
            return None
        if st.st_mtime_ns != seen_mtime_ns:
            os.rename(aside, path)
            return None
        aside.unlink(missing_ok=True)
        return st.st_size

    def remove_written(self, digests: Iterable[str]) -> int:
        """Remove blobs a failed write created (their digests); :returns: bytes freed."""
        freed = 0
        for d in set(digests):
            try:
                size = self.path(d).stat().st_size
                self.path(d).unlink()
                freed += size
            except FileNotFoundError:
                pass
        return freed

    # -- writing -----------------------------------------------------------------

    def put_range(self, src_fd: int, offset: int, size: int, view: memoryview | None = None) -> tuple[str, bool]:
        """Store bytes ``[offset, offset+size)`` of the open file ``src_fd``.

        ``view`` (a memoryview of the mapped file) lets the digest be computed without
        a copy; the bytes are then copied kernel-side (``copy_file_range``) only if the
        blob is new. :returns: ``(sha256 hex, written)``.
        """
        if view is not None:
            digest = hashlib.sha256(view[offset : offset + size]).hexdigest()
        else:
            h = hashlib.sha256()
            pos, end = offset, offset + size
            while pos < end:
                chunk = os.pread(src_fd, min(CHUNK, end - pos), pos)
                if not chunk:
                    raise OSError("file shrank while being read")
                h.update(chunk)
                pos += len(chunk)
            digest = h.hexdigest()
        if self._reuse(digest):
            return digest, False

        def fill(fd: int) -> None:
            pos, left = offset, size
            while left:
                try:
                    n = os.copy_file_range(src_fd, fd, left, pos)
                except OSError:
                    n = 0
                if n <= 0:  # not supported here (or EOF): plain copy
                    data = os.pread(src_fd, min(CHUNK, left), pos)
                    if not data:
                        raise OSError("file shrank while being read")
                    n = os.write(fd, data)
                pos += n
                left -= n

        self._write_new(digest, fill)
        return digest, True

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``. :returns: ``(sha256 hex, written)``."""
        digest = hashlib.sha256(data).hexdigest()
        if self._reuse(digest):
            return digest, False

        def fill(fd: int) -> None:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]

        self._write_new(digest, fill)
        return digest, True

    def _write_new(self, digest: str, fill) -> None:  # type: ignore[no-untyped-def]
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            fill(fd)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    # -- reading -----------------------------------------------------------------

    def copy_into(self, digest: str, out_fd: int) -> int:
        """Append the blob's bytes to ``out_fd``; :returns: bytes copied."""
        path = self.path(digest)
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            left = size
            while left:
                try:
                    n = os.copy_file_range(src.fileno(), out_fd, left)
                except OSError:
                    n = 0
                if n <= 0:
                    data = src.read(min(CHUNK, left))
                    if not data:
                        raise OSError(f"blob {digest} is shorter than expected")
                    n = os.write(out_fd, data)
                left -= n
        return size

    def hash_file(self, digest: str) -> str | None:
        """Re-hash a stored blob: its actual sha256, or ``None`` if it is missing."""
        try:
            with open(self.path(digest), "rb") as fh:
                return hashlib.file_digest(fh, "sha256").hexdigest()
        except FileNotFoundError:
            return None

    def iter_digests(self) -> Iterator[tuple[str, Path]]:
        """Every stored blob (digest, path); temporary files are skipped."""
        if not self.base.is_dir():
            return
        for sub in sorted(self.base.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in sorted(sub.iterdir()):
                if f.name.startswith((".tmp-", ".gc-")):
                    continue
                yield sub.name + f.name, f

    def iter_temp(self) -> Iterator[Path]:
        """Left-over temporary files (from a killed writer)."""
        if not self.base.is_dir():
            return
        for sub in self.base.iterdir():
            if sub.is_dir():
                yield from sub.glob(".tmp-*")
                yield from sub.glob(".gc-*")  # a gc killed between rename and unlink



def manifest_digest(digests: Iterable[str]) -> str:
    """Digest of a safetensors file stored as parts: sha256 of the parts' digests."""
    h = hashlib.sha256()
    for d in digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()
