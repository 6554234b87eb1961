"""Metric plots with matplotlib (Agg): loss, perplexity, learning rate, throughput.

Only the panels whose series exist are drawn; each line is labelled
``"<kind>/<name>"`` (e.g. ``train/loss``, ``eval/val_ppl``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.sdk import METRICS_PLOT, ValidationError

from llmos_monitor.store import series

#: panel title → predicate on a metric name
PANELS: list[tuple[str, str, Any]] = [
    ("loss", "loss", lambda n: n == "loss" or n.endswith("_loss") or n.endswith("loss")),
    ("perplexity", "perplexity", lambda n: n in ("ppl", "perplexity") or n.endswith("_ppl")
     or n.endswith("perplexity")),
    ("learning rate", "lr", lambda n: n in ("lr", "learning_rate") or n.endswith("_lr")),
    ("throughput", "per second", lambda n: n.endswith("_per_s") or n.endswith("_per_sec") or n == "throughput"),
]
_SKIP_KINDS = {"system", "stage"}


def panels_for(points: list[dict[str, Any]]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """``[(title, y label, [series...])]`` for the panels that have data."""
    all_series = [s for s in series(points).values() if s["kind"] not in _SKIP_KINDS]
    out = []
    for title, ylabel, match in PANELS:
        chosen = [s for s in all_series if match(s["name"])]
        if chosen:
            out.append((title, ylabel, chosen))
    return out


def plot_points(points: list[dict[str, Any]], path: str | Path, *, title: str = "") -> Any:
    """Draw the panels for ``points`` and save a PNG at ``path``.

    :returns: the matplotlib ``Figure`` (closed from pyplot's registry; still inspectable).
    :raises ValidationError: there is nothing to plot.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValidationError(f"plot file must end in .png, got {out.name!r}")
    panels = panels_for(points)
    if not panels:
        names = sorted({p["name"] for p in points}) or ["none"]
        raise ValidationError(
            f"nothing to plot for {title or 'this run'}: no loss, perplexity, learning-rate or throughput "
            f"metrics (it has: {', '.join(names[:12])})"
        )
    # one-off values (step None, e.g. a final evaluation) are drawn at the run's last step
    last_step = max((p["step"] for p in points if p["step"] is not None and p["kind"] not in _SKIP_KINDS),
                    default=0)
    fig = Figure(figsize=(7.5, 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (ptitle, ylabel, chosen) in zip(axes, panels, strict=True):
        for s in chosen:
            pts = sorted(
                ((st if st is not None else last_step, ts or 0.0, v)
                 for st, ts, v in zip(s["steps"], s["timestamps"], s["values"], strict=True)),
                key=lambda t: (t[0], t[1]),
            )
            xs, ys = [t[0] for t in pts], [t[2] for t in pts]
            ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, label=f"{s['kind']}/{s['name']}")
        ax.set_title(ptitle)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        if ptitle in ("perplexity",) and all(v > 0 for s in chosen for v in s["values"]):
            vals = [v for s in chosen for v in s["values"]]
            if max(vals) / min(vals) > 50:
                ax.set_yscale("log")
    axes[-1].set_xlabel("step")
    if title:
        fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return fig


class PlotStep:
    """Pipeline step ``monitoring.plot``: plot this run's metrics into its workdir."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, float] | None:
        from llmos_monitor.store import open_registry, run_metrics

        if ctx.run_id is None:
            return None
        writer = getattr(ctx, "_metric_writer", None)
        flush = getattr(writer, "flush", None)
        if callable(flush):  # the runner's batched writer: make what was logged visible
            flush()
        reg = getattr(writer, "reg", None) or open_registry()  # the registry the runner writes to
        points = run_metrics(reg, str(ctx.run_id))
        out = Path(ctx.workdir) / self.config.path
        plot_points(points, out, title=self.config.title or f"run {ctx.run_id}")
        METRICS_PLOT.set(ctx, str(out))
        return None
