"""What the dashboard shows, read from the registry, the plugin manager and the index.

Kept apart from the web app so the JSON API, the pages and the tests share it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError

from llmos_monitor.store import as_dict


def _version_dict(v: Any) -> dict[str, Any]:
    d = as_dict(v)
    d.setdefault("aliases", [])
    d.setdefault("parents", [])
    d.setdefault("metrics", {})
    d.setdefault("tags", {})
    d.setdefault("lineage", {})
    d.setdefault("files", [])
    d["files"] = [as_dict(f) for f in d["files"]]
    if d.get("created_at") is not None and not isinstance(d["created_at"], str):
        d["created_at"] = d["created_at"].isoformat()
    d.setdefault("ref", f"{d.get('model')}:{d.get('number')}")
    return d


def models(reg: Any) -> list[dict[str, Any]]:
    """Every model with its versions (oldest first) and aliases ``{alias: number}``."""
    return [model(reg, m["name"], m) for m in reg.list_models()]


def model(reg: Any, name: str, listed: dict[str, Any] | None = None) -> dict[str, Any]:
    """One model: ``{"name", "description", "versions", "aliases", "latest"}``.

    :raises NotFoundError: no such model.
    """
    if listed is None:
        found = [m for m in reg.list_models() if m["name"] == name]
        if not found:
            raise NotFoundError(f"no model named {name!r}: see the Models page for registered models")
        listed = found[0]
    versions = [_version_dict(v) for v in reg.list_versions(name)]
    return {
        "name": name,
        "description": listed.get("description") or "",
        "versions": versions,
        "aliases": dict(listed.get("aliases") or {}),
        "latest": f"{name}:{listed['latest']}" if listed.get("latest") else None,
    }


def version(reg: Any, name: str, number: int) -> dict[str, Any]:
    """One version with its files (``name:number``). :raises NotFoundError: no such version."""
    return _version_dict(reg.resolve(f"{name}:{number}"))


def diff_to_parent(reg: Any, v: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """``(parent ref, diff dict)`` against the first parent, or ``(None, None)``."""
    if not v["parents"]:
        return None, None
    parent = v["parents"][0]
    return parent, as_dict(reg.diff(parent, v["ref"]))


def diff_tables(diff: dict[str, Any]) -> tuple[list[tuple[str, list[dict[str, Any]]]], dict[str, Any]]:
    """A registry diff (``reg.diff(a, b)``) as tables of row dicts, plus a summary.

    Tables: ``tensors`` (changed/added/removed, with dtype, shape and size on each
    side), ``files`` (added/removed/changed paths) and ``metrics`` (a, b, delta).
    """
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    t = diff.get("tensors") or {}
    rows = []
    for change in ("changed", "added", "removed"):
        for item in t.get(change, []):
            a = item.get("a") if change == "changed" else (item if change == "removed" else None)
            b = item.get("b") if change == "changed" else (item if change == "added" else None)
            rows.append({
                "tensor": item["name"], "change": change,
                "a": _brief(a), "b": _brief(b),
                "size delta": (b or {}).get("size", 0) - (a or {}).get("size", 0),
            })
    if rows:
        tables.append(("tensors", rows))
    files = diff.get("files") or {}
    frows = [{"file": path, "change": change} for change in ("changed", "added", "removed")
             for path in files.get(change, [])]
    if frows:
        tables.append(("files", frows))
    mrows = [{"metric": k, "parent": v.get("a"), "this": v.get("b"), "delta": v.get("delta")}
             for k, v in (diff.get("metrics") or {}).items()]
    if mrows:
        tables.append(("metrics", mrows))
    size = diff.get("size") or {}
    summary = {
        "tensors unchanged": t.get("unchanged", 0),
        "tensors changed": len(t.get("changed", [])),
        "size delta (bytes)": size.get("delta", 0),
        "shared tensor bytes": size.get("shared_tensor_bytes", 0),
    }
    return tables, summary


def _brief(t: dict[str, Any] | None) -> str:
    if not t:
        return "-"
    shape = "×".join(str(i) for i in (t.get("shape") or [])) or "scalar"
    return f"{t.get('dtype')} [{shape}] {t.get('size')} B"


def lineage_svg(m: dict[str, Any]) -> str:
    """A left-to-right lineage graph of a model's versions as inline SVG.

    Parents from other models appear as grey nodes. Each node is ``<g class="node"
    data-ref="name:N">``; edges are ``<path class="edge" data-from=... data-to=...>``.
    """
    name = m["name"]
    versions = {v["ref"]: v for v in m["versions"]}
    refs = list(versions)
    for v in m["versions"]:
        for p in v["parents"]:
            if p not in versions and p not in refs:
                refs.insert(0, p)
    depth: dict[str, int] = {}

    def d(ref: str, seen: frozenset[str] = frozenset()) -> int:
        if ref in depth:
            return depth[ref]
        v = versions.get(ref)
        parents = [p for p in (v["parents"] if v else []) if p not in seen]
        depth[ref] = 0 if not parents else 1 + max(d(p, seen | {ref}) for p in parents)
        return depth[ref]

    for r in refs:
        d(r)
    cols: dict[int, list[str]] = {}
    for r in refs:
        cols.setdefault(depth[r], []).append(r)
    bw, bh, gx, gy, pad = 132, 44, 56, 16, 12
    pos = {}
    for c, items in cols.items():
        for i, r in enumerate(items):
            pos[r] = (pad + c * (bw + gx), pad + i * (bh + gy))
    width = pad * 2 + (max(cols) + 1) * (bw + gx) - gx if cols else 200
    height = pad * 2 + max((len(i) for i in cols.values()), default=1) * (bh + gy) - gy
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-nodes="{len(refs)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9ca3af"/></marker></defs>',
    ]
    for r in refs:
        v = versions.get(r)
        for p in (v["parents"] if v else []):
            if p in pos:
                x1, y1 = pos[p][0] + bw, pos[p][1] + bh / 2
                x2, y2 = pos[r][0], pos[r][1] + bh / 2
                mx = (x1 + x2) / 2
                out.append(
                    f'<path class="edge" data-from="{html.escape(p)}" data-to="{html.escape(r)}" '
                    f'd="M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}"/>'
                )
    for r in refs:
        x, y = pos[r]
        v = versions.get(r)
        status = v.get("status", "ready") if v else "external"
        aliases = ", ".join(v["aliases"]) if v else ""
        label = f"v{v['number']}" if v else r
        href = f"/models/{name}/versions/{v['number']}" if v else "/models/" + r.split(":")[0]
        sub = aliases or (v.get("tags", {}).get("stage", "") if v else "other model")
        out.append(
            f'<a href="{html.escape(href)}"><g class="node {html.escape(status)}" data-ref="{html.escape(r)}">'
            f'<rect x="{x}" y="{y}" width="{bw}" height="{bh}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" font-weight="600">{html.escape(label)}</text>'
            f'<text x="{x + 8}" y="{y + 34}" fill="#4b5563">{html.escape(sub[:20])}</text></g></a>'
        )
    out.append("</svg>")
    return "".join(out)


def plugins() -> list[dict[str, Any]]:
    """Installed plugins (the process's plugin manager) with their components."""
    from llmos.sdk import get_manager

    manager = get_manager()
    comps: dict[str, list[str]] = {}
    for c in manager.components():
        comps.setdefault(c.plugin, []).append(c.ref)
    out = []
    for info in sorted(manager.plugins.values(), key=lambda i: i.name):
        d = info.to_dict()
        d["components"] = comps.get(info.name, [])
        d["hooks"] = [h.removeprefix("llmos_") for h in d.get("hooks", [])]
        out.append(d)
    return out


def community(index_dir: Path | None = None) -> tuple[str, list[dict[str, Any]], str | None]:
    """``(where, entries, problem)`` for the community plugin index.

    Read with :func:`llmos_community.index.load_index` (plugin llmos-community) from
    ``index_dir`` (default:
    the index ``llmos plugin install`` uses — ``$LLMOS_INDEX``, ``./registry``, the
    checkout's ``registry/``). Entries: ``name``, ``summary``, ``versions`` (yanked
    ones marked), ``status``, ``stages``.
    """
    from llmos_community.index import default_index_path, load_index

    root = Path(index_dir) if index_dir is not None else default_index_path()
    if not root.is_dir():
        return str(root), [], f"no plugin index at {root} (set $LLMOS_INDEX to a registry/ folder)"
    index = load_index(root)
    entries = []
    for entry in index.plugins.values():
        m = entry.manifest
        raw = entry.plugin.raw or {}
        versions = []
        for ver, doc in sorted(entry.versions.items()):
            yanked = bool(doc.model.yanked) if doc.model is not None else bool((doc.raw or {}).get("yanked"))
            versions.append(f"{ver} (yanked)" if yanked else ver)
        entries.append({
            "name": entry.name,
            "summary": (m.summary if m is not None else raw.get("summary")) or "",
            "versions": versions,
            "status": (m.status if m is not None else "invalid manifest"),
            "stages": [str(getattr(st, "value", st)) for st in (m.stages if m is not None else raw.get("stages", []))],
        })
    problem = f"{len(index.problems)} problem(s) in the index: run llmos index check" if index.problems else None
    return str(root), sorted(entries, key=lambda e: e["name"]), problem


# -- search, compare, eval tasks, promotion history --------------------------------------


def match_text(query: str, *fields: Any) -> bool:
    """Whether every word of ``query`` occurs (case-insensitively) in one of ``fields``."""
    hay = " ".join(str(f) for f in fields if f is not None).lower()
    return all(word in hay for word in query.lower().split())


def filter_models(ms: list[dict[str, Any]], q: str = "") -> list[dict[str, Any]]:
    """Models whose name, description, aliases, version tags or metric names match ``q``."""
    if not q.strip():
        return ms
    out = []
    for m in ms:
        tags = [f"{k}={t}" for v in m["versions"] for k, t in (v.get("tags") or {}).items()]
        metrics = [k for v in m["versions"] for k in (v.get("metrics") or {})]
        if match_text(q, m["name"], m["description"], *m["aliases"], *tags, *metrics):
            out.append(m)
    return out


def filter_runs(runs: list[dict[str, Any]], q: str = "", status: str = "", pipeline: str = "") -> list[dict[str, Any]]:
    """Runs matching ``q`` (id, pipeline, status, versions made) and the exact filters."""
    out = []
    for r in runs:
        if status and r.get("status") != status:
            continue
        if pipeline and r.get("pipeline") != pipeline:
            continue
        if q.strip() and not match_text(q, r["id"], r.get("pipeline"), r.get("status"), *run_versions(r)):
            continue
        out.append(r)
    return out


def run_versions(run: dict[str, Any]) -> list[str]:
    """The versions a run made: recorded in the registry (detail) or in its summary."""
    return list(run.get("versions") or (run.get("summary") or {}).get("versions") or [])


def by_task(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Split a version's metrics into plain ones and eval results per task: a metric named
    ``<task>/<metric>`` (``docstrings-mc/acc``) belongs to task ``<task>``."""
    plain: dict[str, float] = {}
    tasks: dict[str, dict[str, float]] = {}
    for name, value in sorted(metrics.items()):
        task, sep, metric = name.rpartition("/")
        if sep and task and metric:
            tasks.setdefault(task, {})[metric] = value
        else:
            plain[name] = value
    return plain, tasks


PROMOTION_EVENTS = ("deploy.promoted", "deploy.refused")


def promotion_history(reg: Any, ref: str, limit: int = 50) -> list[dict[str, Any]]:
    """Promotion decisions about version ``ref`` (events of ``llmos deploy promote
    --require`` and ``deployment.promote``), newest first."""
    out = []
    for kind in PROMOTION_EVENTS:
        out += reg.events(kind=kind, subject=ref, limit=limit)
    return sorted(out, key=lambda e: e["id"], reverse=True)[:limit]


def compare_runs(reg: Any, ids: list[str]) -> dict[str, Any]:
    """Runs side by side: ``{"runs": [...], "metrics": [{"key", "values": [last or None per run]}],
    "config": [{"key", "values"}] (settings that differ)}``."""
    from llmos_monitor import store
    from llmos_monitor.summary import summarize

    runs = [store.get_run(reg, i) for i in ids]
    per_run = []
    for r in runs:
        rows = summarize(store.run_metrics(reg, r["id"]))
        last = {f"{row['kind']}/{row['name']}": row["last"] for row in rows if row["kind"] != "system"}
        for k, v in ((r.get("summary") or {}).get("metrics") or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                last.setdefault(f"final/{k}", v)
        per_run.append(last)
    keys = sorted({k for d in per_run for k in d})
    from llmos.sdk import flatten_config

    configs = [flatten_config(r.get("config") or {}) for r in runs]
    ckeys = sorted({k for c in configs for k in c})
    differ = [k for k in ckeys if len({repr(c.get(k)) for c in configs}) > 1]
    return {
        "runs": runs,
        "metrics": [{"key": k, "values": [d.get(k) for d in per_run]} for k in keys],
        "config": [{"key": k, "values": [c.get(k) for c in configs]} for k in differ],
    }


def compare_versions(reg: Any, refs: list[str]) -> dict[str, Any]:
    """Versions side by side: every metric (tasks included), size and the run that made each."""
    vs = [_version_dict(reg.resolve(r)) for r in refs]
    keys = sorted({k for v in vs for k in v["metrics"]})
    rows = [{"key": k, "values": [v["metrics"].get(k) for v in vs]} for k in keys]
    rows.append({"key": "size_bytes", "values": [v.get("size_bytes") for v in vs]})
    return {"versions": vs, "metrics": rows}
