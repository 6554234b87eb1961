"""Comparing versions (tensor-level diff) and walking lineage.

Functions take the :class:`~llmos_registry.store.Store` (the :class:`~llmos_registry.Registry`)
as their first argument; the ``Registry`` facade exposes them as methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from llmos_registry.models import (
    LineageEdge,
    Model,
    ModelVersion,
    VersionMetric,
)

from llmos_registry import versions

from llmos_registry.types import DiffReport

if TYPE_CHECKING:
    from llmos_registry.store import Store


def diff(store: Store, a: str, b: str) -> DiffReport:
    """What changed from version ``a`` to ``b``: tensors changed/added/removed
    (safetensors), other files, sizes and metric deltas."""
    with store.session() as s:
        va, vb = store._find(s, a), store._find(s, b)
        ia, ib = store._info(s, va), store._info(s, vb)
        ta, tb = versions._tensors(store, s, va), versions._tensors(store, s, vb)
    changed, added, removed, same_bytes = [], [], [], 0
    for key in sorted(set(ta) | set(tb)):
        x, y = ta.get(key), tb.get(key)
        if x is None:
            added.append({"name": key, **_tensor_brief(y)})
        elif y is None:
            removed.append({"name": key, **_tensor_brief(x)})
        elif x["sha256"] != y["sha256"]:
            changed.append(
                {"name": key, "a": _tensor_brief(x), "b": _tensor_brief(y)}
            )
        else:
            same_bytes += x["size"]
    fa = {f["path"]: f for f in ia.files}
    fb = {f["path"]: f for f in ib.files}
    files = {
        "added": sorted(set(fb) - set(fa)),
        "removed": sorted(set(fa) - set(fb)),
        "changed": sorted(p for p in set(fa) & set(fb) if fa[p]["sha256"] != fb[p]["sha256"]),
    }
    metrics = {}
    for key in sorted(set(ia.metrics) | set(ib.metrics)):
        x, y = ia.metrics.get(key), ib.metrics.get(key)
        metrics[key] = {"a": x, "b": y, "delta": (y - x) if x is not None and y is not None else None}
    return {
        "a": ia.ref,
        "b": ib.ref,
        "tensors": {
            "changed": changed,
            "added": added,
            "removed": removed,
            "unchanged": len([k for k in set(ta) & set(tb) if ta[k]["sha256"] == tb[k]["sha256"]]),
        },
        "files": files,
        "size": {"a": ia.size_bytes, "b": ib.size_bytes, "delta": ib.size_bytes - ia.size_bytes,
                 "shared_tensor_bytes": same_bytes},
        "metrics": metrics,
    }


def lineage(store: Store, ref: str, *, max_depth: int = 50) -> dict[str, Any]:
    """The version with its ancestors as a tree: ``{"ref", "status", "method",
    "run_id", "parents": [...same...], "children": [refs]}``."""
    with store.session() as s:
        root = store._find(s, ref, allow_deleted=True)

        def node(v: ModelVersion, depth: int, seen: frozenset[int]) -> dict[str, Any]:
            name = s.scalar(select(Model.name).where(Model.id == v.model_id))
            out = {
                "ref": f"{name}:{v.number}",
                "status": v.status,
                "method": (v.lineage or {}).get("method"),
                "run_id": v.run_id,
                "metrics": dict(
                    s.execute(select(VersionMetric.name, VersionMetric.value).where(VersionMetric.version_id == v.id)).all()
                ),
                "parents": [],
            }
            if depth < max_depth:
                parents = s.scalars(
                    select(ModelVersion)
                    .join(LineageEdge, LineageEdge.parent_id == ModelVersion.id)
                    .where(LineageEdge.child_id == v.id)
                    .order_by(ModelVersion.id)
                ).all()
                out["parents"] = [node(p, depth + 1, seen | {v.id}) for p in parents if p.id not in seen]
            return out

        tree = node(root, 0, frozenset())
        tree["children"] = [
            f"{m}:{n}"
            for m, n in s.execute(
                select(Model.name, ModelVersion.number)
                .join(ModelVersion, ModelVersion.model_id == Model.id)
                .join(LineageEdge, LineageEdge.child_id == ModelVersion.id)
                .where(LineageEdge.parent_id == root.id)
                .order_by(Model.name, ModelVersion.number)
            ).all()
        ]
        return tree


def _tensor_brief(t: dict[str, Any] | None) -> dict[str, Any]:
    assert t is not None
    return {"dtype": t["dtype"], "shape": t["shape"], "size": t["size"]}

