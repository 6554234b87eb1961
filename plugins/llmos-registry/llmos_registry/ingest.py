"""Registering a version: collect and validate the files, store their blobs under a pin, commit the rows.

Blobs are written (temp file, fsync, rename) before the rows that reference them are
committed, so a crash leaves no partial version; a register that fails removes the blobs
it wrote at once, and a pin keeps gc away from them meanwhile (see :mod:`llmos_registry.pins`).

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.exc import OperationalError

from llmos.sdk import LlmosError, NotFoundError, ValidationError
from llmos.sdk import redact
from llmos_registry import db as _db
from llmos_registry import safetensors_io
from llmos_registry.blobs import BlobStats, manifest_digest
from llmos_registry.models import (
    Event,
    FilePart,
    LineageEdge,
    ModelVersion,
    Run,
    Tag,
    VersionFile,
    VersionMetric,
    utcnow,
)
from llmos_registry.refs import (
    PICKLE_SUFFIXES,
    _check_json,
    _check_metrics,
    _check_tags,
    check_alias,
    check_name,
    parse_ref,
)
from llmos_registry.types import VersionInfo

from llmos_registry import maintenance
from llmos_registry import versions

from llmos_registry.store import version_info

if TYPE_CHECKING:
    from llmos_registry.store import Store


def register_version(store: Store,
    name: str,
    path: Path | str,
    *,
    description: str = "",
    tags: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    parents: Sequence[str] | None = None,
    lineage: Mapping[str, Any] | None = None,
    aliases: Sequence[str] | None = None,
    run_id: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> VersionInfo:
    """Register the files at ``path`` (a Hugging Face layout directory or a single
    ``.safetensors`` file) as the next version of model ``name``.

    :param parents: refs of the versions this one derives from.
    :param lineage: ``{"run_id", "method", "settings", "data"}`` (any JSON).
    :param aliases: aliases to point at the new version in the same transaction.
    :param progress: called with the number of bytes processed, as they are.
    :returns: the new version (``stored_bytes``/``reused_bytes`` say what the blob
        store had to write).
    :raises ValidationError: bad name, tags, metrics, files (nothing is written).
    :raises NotFoundError: a parent does not exist.
    """
    check_name(name)
    tag_values = _check_tags(tags)
    metric_values = _check_metrics(metrics)
    alias_names = [check_alias(a) for a in (aliases or [])]
    lineage_data = dict(_check_json(redact(dict(lineage or {})), "lineage"))
    if run_id is None and isinstance(lineage_data.get("run_id"), str):
        run_id = lineage_data["run_id"]
    parent_refs = list(dict.fromkeys(parents or []))
    for ref in parent_refs:
        parse_ref(ref)
    files = _collect_files(Path(path))
    layouts = {rel: safetensors_io.read_layout(src) for rel, src in files if rel.endswith(".safetensors")}
    with store.session() as s:  # fail early, before writing any blob
        for ref in parent_refs:
            store._find(s, ref)
        if run_id is not None and s.get(Run, run_id) is None:
            raise NotFoundError(f"run {run_id!r} does not exist (see: llmos runs list)")

    from llmos_registry import pins

    stats = BlobStats()
    # the pin is committed before the first blob is written or reused: gc keeps
    # them whatever its grace, until the version that references them is committed
    written: list[tuple[str, int]] = []
    committed = False
    try:
        with pins.pinned(store.session, f"register {name}"):
            try:
                manifest = _ingest(store, files, layouts, stats, progress, written)

                size_bytes = sum(f["size"] for f in manifest)
                with store.session(write=True) as s:
                    model = store._lock_model(s, name, create=description)
                    parent_versions = [store._find(s, ref) for ref in parent_refs]
                    model.last_version += 1
                    number = model.last_version
                    created = utcnow()
                    s.flush()
                    # Core bulk inserts: the write lock is held for as short a time as possible
                    version_id = s.execute(
                        insert(ModelVersion)
                        .values(model_id=model.id, number=number, status="ready", description=description,
                                size_bytes=size_bytes, lineage=lineage_data, run_id=run_id, created_at=created)
                        .returning(ModelVersion.id)
                    ).scalar_one()
                    file_ids = s.execute(
                        insert(VersionFile).returning(VersionFile.id, sort_by_parameter_order=True),
                        [{"version_id": version_id, "path": f["path"], "kind": f["kind"], "sha256": f["sha256"],
                          "size": f["size"]} for f in manifest],
                    ).scalars().all()
                    part_rows = [{"file_id": fid, **p} for fid, f in zip(file_ids, manifest) for p in f.get("parts", [])]
                    if part_rows:
                        s.execute(insert(FilePart), part_rows)
                    if tag_values:
                        s.execute(insert(Tag), [{"version_id": version_id, "key": k, "value": v} for k, v in tag_values.items()])
                    if metric_values:
                        s.execute(insert(VersionMetric), [{"version_id": version_id, "name": k, "value": v, "logged_at": created}
                                                          for k, v in metric_values.items()])
                    unique_parents = {p.id: p for p in parent_versions}
                    if unique_parents:
                        s.execute(insert(LineageEdge), [{"child_id": version_id, "parent_id": pid} for pid in unique_parents])
                    version = s.get(ModelVersion, version_id)
                    assert version is not None
                    moved = [versions._move_alias(store, s, model, a, version) for a in alias_names]
                    parent_names = {p.model_id: parse_ref(r)[0] for r, p in zip(parent_refs, parent_versions)}
                    parent_list = sorted({(parent_names[p.model_id], p.number) for p in parent_versions})
                    s.add(
                        Event(
                            kind="version.registered",
                            subject=f"{name}:{number}",
                            data={"files": len(manifest), "size_bytes": size_bytes, "stored_bytes": stats.written_bytes,
                                  "parents": [f"{m}:{n}" for m, n in parent_list]},
                        )
                    )
                committed = True  # the transaction above has committed
                _verify_stored(store, manifest, files, layouts)
            except BaseException:
                if not committed:
                    _discard(store, written)
                raise
    except OSError as exc:
        raise _store_error(exc, store.blobs.base) from None
    except OperationalError as exc:
        raise _db_error(exc, store.url) from None
    row = SimpleNamespace(number=number, status="ready", lineage=lineage_data, created_at=created,
                          size_bytes=size_bytes, description=description, run_id=run_id)
    info = version_info(name, row, files=manifest, metrics=metric_values, tags=tag_values,
                        parents=[f"{m}:{n}" for m, n in parent_list], aliases=sorted(set(alias_names)))
    info.stored_bytes = stats.written_bytes
    info.reused_bytes = stats.reused_bytes
    store.notify("llmos_after_version_registered", version=info)
    for alias, old in moved:
        store.notify("llmos_after_alias_moved", model=name, alias=alias, old_version=old, new_version=number)
    return info


def _ingest(store: Store,
    files: list[tuple[str, Path]],
    layouts: dict[str, list[safetensors_io.Part]],
    stats: BlobStats,
    progress: Callable[[int], None] | None,
    written: list[tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Store every file's blobs (whole files, or header + one blob per tensor).

    Blobs are hashed, written and fsynced by a pool of threads: sha256 releases the
    GIL, and concurrent fsyncs share the file system's journal commits — one fsync
    after another costs a commit each, which dominates for a 100-tensor model.
    """
    from concurrent.futures import ThreadPoolExecutor

    opened: list[tuple[int, mmap.mmap | None, memoryview | None]] = []
    try:
        jobs: list[tuple[str, list[safetensors_io.Part] | None, int, Any]] = []
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="llmos-blob") as pool:
            for rel, src in files:
                try:  # a link swapped in after validation is not followed
                    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError as exc:
                    raise ValidationError(f"cannot read {src}: {exc.strerror}; register again") from None
                size = os.fstat(fd).st_size
                mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else None
                view = memoryview(mm) if mm is not None else None
                opened.append((fd, mm, view))
                parts = layouts.get(rel)
                if parts is not None and parts[-1].offset + parts[-1].size != size:
                    raise ValidationError(f"{src} changed while being registered; try again")
                ranges = [(p.offset, p.size) for p in parts] if parts is not None else [(0, size)]
                futures = [pool.submit(_put, store, fd, off, n, view, written) for off, n in ranges]
                jobs.append((rel, parts, size, futures))
            manifest = []
            for rel, parts, size, futures in jobs:
                results = [f.result() for f in futures]
                if parts is None:
                    (digest, written), = results
                    _count(stats, size, written)
                    if progress:
                        progress(size)
                    manifest.append({"path": rel, "kind": "blob", "sha256": digest, "size": size})
                    continue
                rows = []
                for seq, (part, (digest, written)) in enumerate(zip(parts, results)):
                    _count(stats, part.size, written)
                    rows.append({"seq": seq, "name": part.name, "sha256": digest, "size": part.size,
                                 "dtype": part.dtype, "shape": part.shape})
                    if progress:
                        progress(part.size)
                manifest.append({"path": rel, "kind": "safetensors",
                                 "sha256": manifest_digest(r["sha256"] for r in rows), "size": size,
                                 "parts": rows})
        return manifest
    finally:
        for fd, mm, view in opened:
            if view is not None:
                view.release()
            if mm is not None:
                mm.close()
            os.close(fd)


def _put(store: Store, fd: int, offset: int, size: int, view: memoryview | None, written: list[tuple[str, int]] | None
) -> tuple[str, bool]:
    digest, new = store.blobs.put_range(fd, offset, size, view)
    if new and written is not None:  # (digest, mtime): a failed register removes what it wrote
        try:
            written.append((digest, store.blobs.path(digest).stat().st_mtime_ns))
        except FileNotFoundError:
            pass
    return digest, new


def _discard(store: Store, written: list[tuple[str, int]]) -> int:
    """Remove the blobs a failed register wrote, at once (not after gc's grace):
    all but those another version references or another writer touched since."""
    if not written:
        return 0
    try:
        with store.session() as s:
            used = maintenance._referenced(store, s)
    except Exception:  # noqa: BLE001 - the database may be what failed: rely on the mtimes
        used = set()
    freed = 0
    for digest, mtime_ns in written:
        if digest not in used:
            freed += store.blobs.remove_unless_touched(store.blobs.path(digest), mtime_ns) or 0
    return freed


def _verify_stored(store: Store, manifest: list[dict[str, Any]], files: list[tuple[str, Path]], layouts: dict[str, list[safetensors_io.Part]]
) -> None:
    """After the commit, while still pinned: every blob the version uses is there
    (a gc that decided before the pin could be seen may have removed one); any
    missing is written again from the source."""
    digests = [f["sha256"] for f in manifest if f["kind"] == "blob"]
    digests += [p["sha256"] for f in manifest for p in f.get("parts", [])]
    if all(store.blobs.exists(d) for d in digests):
        return
    again = _ingest(store, files, layouts, BlobStats(), None)
    if again != manifest or not all(store.blobs.exists(d) for d in digests):
        raise LlmosError("the files changed while being registered and blobs went missing; run: llmos model fsck")


def _count(stats: BlobStats, size: int, written: bool) -> None:
    if written:
        stats.written_bytes += size
        stats.written_blobs += 1
    else:
        stats.reused_bytes += size
        stats.reused_blobs += 1


def _collect_files(path: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, source)`` of the files to register, validated.

    Symbolic links are followed only inside the model directory: a link (to a file or
    a directory) that leads out of it, a broken link, a link loop and anything that is
    not a regular file or directory are refused, naming the entry. ``source`` is the
    resolved path, opened later with ``O_NOFOLLOW``.
    """
    if not path.exists() and not path.is_symlink():
        raise ValidationError(f"{path} does not exist: give a model directory (Hugging Face layout) or a .safetensors file")
    if path.is_file():
        _refuse_pickle(path)
        if path.suffix != ".safetensors":
            raise ValidationError(
                f"{path} is a single file but not .safetensors: register a directory (Hugging Face layout) or a .safetensors file"
            )
        return [(path.name, path.resolve())]
    if not path.is_dir():
        raise ValidationError(f"{path} is not a regular file or directory (or is a broken link)")
    root = path.resolve()
    found: list[tuple[str, Path]] = []

    def walk(real_dir: Path, rel_dir: str, ancestors: frozenset[Path] = frozenset()) -> None:
        if real_dir in ancestors:
            raise ValidationError(f"{path / rel_dir} is a symbolic link loop: remove the link and register again")
        ancestors = ancestors | {real_dir}
        try:
            entries = sorted(os.scandir(real_dir), key=lambda e: e.name)
        except OSError as exc:
            raise ValidationError(f"cannot read {path / rel_dir}: {exc.strerror}") from None
        for entry in entries:
            n = entry.name
            if n.startswith(".") or n == "__pycache__":
                continue
            rel = f"{rel_dir}/{n}" if rel_dir else n
            shown = path / rel
            real = Path(entry.path)
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))
                if not target.is_relative_to(root):
                    raise ValidationError(
                        f"{shown} is a symbolic link to {os.readlink(entry.path)}, outside the model directory: "
                        "copy the file into the directory (or remove the link) and register again"
                    )
                if not target.exists():
                    raise ValidationError(f"{shown} is a broken symbolic link: fix or remove it and register again")
                real = target
            if real.is_dir():
                walk(real, rel, ancestors)
                continue
            _refuse_pickle(shown)
            if not real.is_file():
                raise ValidationError(f"{shown} is not a regular file (a socket, pipe or device): remove it and register again")
            found.append((rel, real))

    walk(root, "")
    if not found:
        raise ValidationError(f"{path} contains no files: nothing to register")
    return found


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValidationError(
            f"{path} is a pickle-based weight file, which llmos never loads (unpickling can run code): convert it "
            "to safetensors, e.g. safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors'), "
            "or model.save_pretrained(dir, safe_serialization=True), and register that"
        )


def _store_error(exc: OSError, where: Path) -> LlmosError:
    """A failed write to the blob store as one line (nothing was registered)."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LlmosError(
            f"no space left on the device of {where} while storing blobs; nothing was registered and what this "
            "register wrote was removed: free space (llmos model gc removes unused blobs) and register again"
        )
    target = f" ({exc.filename})" if exc.filename else ""
    return LlmosError(f"cannot store blobs in {where}{target}: {exc.strerror or exc}; nothing was registered")


def _db_error(exc: OperationalError, url: str) -> LlmosError:
    detail = (str(exc.orig).strip().splitlines() or ["operational error"])[0]
    hint = "free space and register again" if "full" in detail.lower() else "check LLMOS_DATABASE_URL and register again"
    return LlmosError(f"the registry database {_db.redact(url)} failed: {detail}; nothing was registered: {hint}")

