"""Reading and writing run time series through the registry (``llmos.registry``).

Everything the monitor persists goes through the registry's run API
(``create_run``, ``log_run_metrics``, ``finish_run``, ``get_run``, ``list_runs``,
``run_metrics``), so the SQLite default and PostgreSQL behave the same. This
module normalises what the registry returns (dataclasses, pydantic models or
dicts) into plain dicts for the CLI, the plots and the dashboard.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from llmos.sdk import ValidationError



def open_registry() -> Any:
    """The registry for ``$LLMOS_DATABASE_URL`` / ``$LLMOS_HOME``."""
    from llmos.sdk import open_registry as _open

    return _open()


def as_dict(obj: Any) -> dict[str, Any]:
    """A registry record (dataclass, pydantic model, row or dict) as a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return obj._asdict()
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    try:
        return dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def metric_row(obj: Any) -> dict[str, Any]:
    """One metric point as ``{"kind", "step", "name", "value", "timestamp"}``."""
    if isinstance(obj, (tuple, list)):
        kind, step, name, value, ts = obj[:5]
        d = {"kind": kind, "step": step, "name": name, "value": value, "timestamp": ts}
    else:
        d = as_dict(obj)
    step = d.get("step")
    return {
        "kind": d.get("kind") or "train",
        "step": None if step is None else int(step),
        "name": d["name"],
        "value": float(d["value"]),
        "timestamp": _ts(d.get("timestamp", d.get("ts", d.get("time")))),
    }


def run_id_of(run: Any) -> str:
    d = as_dict(run)
    return str(d.get("id", d.get("run_id")))


def run_dict(run: Any) -> dict[str, Any]:
    """A run as a JSON-friendly dict with the common fields first."""
    d = as_dict(run)
    out: dict[str, Any] = {"id": run_id_of(run)}
    for key, value in d.items():
        if key in ("run_id",):
            continue
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        if key == "stages" and isinstance(value, list):
            value = [_jsonable(as_dict(s)) if not isinstance(s, (str, int, float)) else s for s in value]
        out[key] = _jsonable(value)
    started, finished = _ts(d.get("started_at")), _ts(d.get("finished_at"))
    if started is not None and finished is not None and "duration_s" not in out:
        out["duration_s"] = round(finished - started, 3)
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) or hasattr(value, "model_dump"):
        return _jsonable(as_dict(value))
    return str(value)


def list_runs(reg: Any, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs, newest first."""
    runs = reg.list_runs(limit=limit) if limit is not None else reg.list_runs(limit=10_000)
    return [run_dict(r) for r in runs]


def get_run(reg: Any, ref: str) -> dict[str, Any]:
    """A run (with its stages) by id or unique id prefix.

    :raises NotFoundError: no run matches; :raises ConflictError: the prefix is ambiguous.
    """
    ref = ref.strip()
    if not ref:
        raise ValidationError("give a run id (see `llmos monitor runs`)")
    return run_dict(reg.get_run(ref))


def run_metrics(reg: Any, run_id: str, name: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every metric point of a run (optionally one name / kind), ordered by name, step, time."""
    return [metric_row(r) for r in reg.run_metrics(run_id, name=name, kind=kind)]


def series(points: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Group points into series keyed ``"kind/name"``: ``{"kind", "name", "steps", "values", "timestamps"}``."""
    out: dict[str, dict[str, Any]] = {}
    for p in points:
        key = f"{p['kind']}/{p['name']}"
        s = out.setdefault(key, {"kind": p["kind"], "name": p["name"], "steps": [], "values": [], "timestamps": []})
        s["steps"].append(p["step"])
        s["values"].append(p["value"])
        s["timestamps"].append(p["timestamp"])
    return out
