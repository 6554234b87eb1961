"""Summaries of metric series: first/last/min/max per metric, and terminal sparklines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmos_monitor.store import series

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """``values`` as a line of block characters (down-sampled to ``width`` by bucket means)."""
    vals = [float(v) for v in values if v == v]  # drop NaN
    if not vals:
        return ""
    if len(vals) > width:
        buckets = []
        for i in range(width):
            lo, hi = i * len(vals) // width, (i + 1) * len(vals) // width
            chunk = vals[lo:max(hi, lo + 1)]
            buckets.append(sum(chunk) / len(chunk))
        vals = buckets
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return BARS[len(BARS) // 2] * len(vals)
    scale = (len(BARS) - 1) / (hi - lo)
    return "".join(BARS[round((v - lo) * scale)] for v in vals)


def summarize(points: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per ``(kind, name)``: count, first, last, min, max, first/last step, and the values."""
    rows = []
    for s in series(points).values():
        vals = s["values"]
        steps = [st for st in s["steps"] if st is not None]
        rows.append(
            {
                "kind": s["kind"],
                "name": s["name"],
                "count": len(vals),
                "first": vals[0],
                "last": vals[-1],
                "min": min(vals),
                "max": max(vals),
                "first_step": steps[0] if steps else None,
                "last_step": steps[-1] if steps else None,
                "steps": s["steps"],
                "values": vals,
            }
        )
    order = {"train": 0, "eval": 1, "stage": 2, "request": 3, "serve": 4, "system": 5}
    rows.sort(key=lambda r: (order.get(r["kind"], 9), r["kind"], r["name"]))
    return rows


def fmt(value: float | None) -> str:
    """A compact human form of a metric value."""
    if value is None:
        return "-"
    if value != value:
        return "nan"
    a = abs(value)
    if a != 0 and (a >= 1e6 or a < 1e-3):
        return f"{value:.3e}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"
