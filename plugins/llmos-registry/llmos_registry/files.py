"""Files out: checkouts (read-only, verified) and exports to a Hugging Face layout directory.

Exports to other formats (ONNX, ...) are the CLI's job (:func:`llmos_registry.cli.model_export.export_version`):
the registry does not call into plugins.

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmos.sdk import ConflictError, LlmosError, ValidationError
from llmos_registry.models import (
    FilePart,
    Model,
    ModelVersion,
    VersionFile,
)

from llmos_registry.types import CheckoutProblem

if TYPE_CHECKING:
    from llmos_registry.store import Store


def checkout(store: Store, ref: str) -> Path:
    """Materialise a version as a read-only directory
    ``$LLMOS_HOME/checkouts/<model>/<n>/`` (built in a temporary directory and
    renamed into place, so it is either complete or absent) and return it.

    An existing checkout is reused only if its files still have the sizes and
    mtimes recorded when it was built; one that was
    edited is materialised again (the record is ``<model>/.<n>.stamp.json``, beside
    it). ``fsck`` re-hashes checkouts fully.
    """
    with store.session() as s:
        v = store._find(s, ref)
        name = s.scalar(select(Model.name).where(Model.id == v.model_id))
        number = v.number
        dest = store.checkouts / str(name) / str(number)
        if dest.is_dir() and _stamp_intact(dest):
            return dest
        files, parts = _file_rows(s, v.id)
    return _materialise(store, f"{name}:{number}", dest, files, parts)


def _file_rows(s: Session, version_id: int) -> tuple[list[Any], dict[int, list[tuple[str, int]]]]:
    files = s.execute(
        select(VersionFile.id, VersionFile.path, VersionFile.kind, VersionFile.sha256, VersionFile.size)
        .where(VersionFile.version_id == version_id)
        .order_by(VersionFile.path)
    ).all()
    parts: dict[int, list[tuple[str, int]]] = {}
    for fid, sha, size in s.execute(
        select(FilePart.file_id, FilePart.sha256, FilePart.size)
        .join(VersionFile, VersionFile.id == FilePart.file_id)
        .where(VersionFile.version_id == version_id)
        .order_by(FilePart.file_id, FilePart.seq)
    ).all():
        parts.setdefault(fid, []).append((sha, size))
    return list(files), parts


def _materialise(store: Store, ref: str, dest: Path, files: list[Any], parts: dict[int, list[tuple[str, int]]]) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        for fid, rel, kind, sha, size in files:
            if rel.startswith("/") or ".." in rel.split("/"):
                raise LlmosError(f"{ref} lists an unsafe file path {rel!r}; the database was altered")
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                digests = [d for d, _ in parts.get(fid, [])] if kind == "safetensors" else [sha]
                written = 0
                for d in digests:
                    try:
                        written += store.blobs.copy_into(d, fd)
                    except FileNotFoundError:
                        raise LlmosError(
                            f"blob {d[:12]}… of {ref}/{rel} is missing from {store.blobs.base}; run: llmos model fsck"
                        ) from None
                if written != size:
                    raise LlmosError(f"{ref}/{rel} reassembled to {written} bytes, expected {size}; run: llmos model fsck")
            finally:
                os.close(fd)
            os.chmod(out, 0o444)
        _write_stamp(tmp, dest)  # before the rename: a crash in between only costs a rebuild
        old: Path | None = None
        if dest.is_dir():  # an edited checkout: swap the fresh one in
            old = dest.with_name(f".tmp-{dest.name}-old-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(dest, old)
            except FileNotFoundError:
                old = None
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def verify_checkouts(store: Store, *, repair: bool = False) -> list[CheckoutProblem]:
    """Re-hash every checkout against its version's digests. :returns: the bad ones,
    ``{"ref", "path", "modified", "missing", "extra", "repaired"}``; with ``repair``
    each is materialised again (checkouts of deleted versions are left to gc)."""
    bad: list[dict[str, Any]] = []
    if not store.checkouts.is_dir():
        return bad
    with store.session() as s:
        rows = s.execute(
            select(Model.name, ModelVersion.number, ModelVersion.id)
            .join(ModelVersion, ModelVersion.model_id == Model.id)
            .where(ModelVersion.status != "deleted")
        ).all()
        wanted = {(m, str(n)): vid for m, n, vid in rows}
        for mdir in sorted(p for p in store.checkouts.iterdir() if p.is_dir()):
            for vdir in sorted(p for p in mdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                vid = wanted.get((mdir.name, vdir.name))
                if vid is None:
                    continue
                files, parts = _file_rows(s, vid)
                problems = _check_checkout(vdir, files, parts)
                if problems:
                    bad.append({"ref": f"{mdir.name}:{vdir.name}", "path": str(vdir), **problems,
                                "files": files, "parts": parts})
    for item in bad:
        files, parts = item.pop("files"), item.pop("parts")
        item["repaired"] = False
        if repair:
            _materialise(store, item["ref"], Path(item["path"]), files, parts)
            item["repaired"] = True
    return bad


HF_FORMATS = ("hf", "safetensors")


def check_export_dest(dest: Path | str) -> Path:
    """``dest`` as a Path, if it is new or an empty directory."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConflictError(f"{dest} already exists and is not an empty directory: choose a new destination")
    return dest


def export(store: Store, ref: str, dest: Path | str, *, format: str = "hf") -> list[Path]:
    """Write a version to ``dest`` (new or empty) as a Hugging Face layout directory
    (``format`` ``hf`` or ``safetensors``: the version's files, bit-identical).

    Other formats (``onnx``, ...) are made by deployment components, which the CLI
    resolves (:func:`llmos_registry.cli.model_export.export_version`): the registry does not call into
    plugins. :raises ValidationError: another format.
    """
    dest = check_export_dest(dest)
    if format not in HF_FORMATS:
        raise ValidationError(
            f"the registry exports only {' and '.join(HF_FORMATS)}, not {format!r}: for other formats use "
            f"llmos model export REF DEST --format {format} (a deployment component makes it)"
        )
    src = checkout(store, ref)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-"))
    try:
        out: list[Path] = []
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            target = tmp / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            out.append(dest / f.relative_to(src))
        if dest.exists():
            dest.rmdir()
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _stamp_path(checkout: Path) -> Path:
    """Beside a checkout ``<model>/<n>``: the size and mtime of each of its files when
    it was built (outside the directory, which holds exactly the version's files)."""
    return checkout.parent / f".{checkout.name}.stamp.json"


def _walk_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def _write_stamp(built: Path, dest: Path) -> None:
    import json

    stats = {rel: [p.lstat().st_size, p.lstat().st_mtime_ns] for rel, p in _walk_files(built).items()}
    tmp = dest.parent / f"{_stamp_path(dest).name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(stats, sort_keys=True))
    os.replace(tmp, _stamp_path(dest))


def _stamp_intact(root: Path) -> bool:
    """Do the checkout's files look as they were built (sizes, mtimes; no file added)?"""
    import json

    try:
        recorded = json.loads(_stamp_path(root).read_text())
        found = _walk_files(root)
        if set(found) != set(recorded):
            return False
        for rel, p in found.items():
            st = p.lstat()
            if [st.st_size, st.st_mtime_ns] != recorded[rel]:
                return False
    except (OSError, ValueError, TypeError):
        return False
    return True


def _check_checkout(root: Path, files: list[Any], parts: dict[int, list[tuple[str, int]]]) -> dict[str, list[str]]:
    """Files of the checkout at ``root`` that differ from the version (re-hashed:
    whole files against their digest, safetensors files part by part)."""
    import hashlib

    found = _walk_files(root)
    modified, missing = [], []
    for fid, rel, kind, sha, size in files:
        p = found.pop(rel, None)
        if p is None:
            missing.append(rel)
            continue
        try:
            if p.is_symlink() or p.stat().st_size != size:
                modified.append(rel)
                continue
            with open(p, "rb") as fh:
                if kind == "safetensors":
                    good = True
                    for digest, n in parts.get(fid, []):
                        h = hashlib.sha256()
                        left = n
                        while left:
                            chunk = fh.read(min(left, 8 << 20))
                            if not chunk:
                                break
                            h.update(chunk)
                            left -= len(chunk)
                        if left or h.hexdigest() != digest:
                            good = False
                            break
                else:
                    good = hashlib.file_digest(fh, "sha256").hexdigest() == sha
            if not good:
                modified.append(rel)
        except OSError:
            modified.append(rel)
    if not (modified or missing or found):
        return {}
    return {"modified": modified, "missing": missing, "extra": sorted(found)}

