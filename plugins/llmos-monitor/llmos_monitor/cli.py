"""``llmos monitor ...`` and ``llmos ui`` (click only at import; the rest on use)."""

from __future__ import annotations

from pathlib import Path

import click


from llmos.sdk import echo_json as _echo_json
from llmos.sdk import json_option as _json_option


def _table(rows: list[list[object]], headers: list[str], title: str | None = None) -> None:
    from llmos.sdk import echo_table

    echo_table(rows, headers, title=title)


def _stage_rows(info: dict) -> list[dict]:
    """The run's stage durations (recorded by the runner) as summary rows of kind ``stage``."""
    rows = []
    for st in info.get("stages") or []:
        d = st.get("duration_s")
        if d is not None:
            name = f"{st.get('stage_id')}.duration_s"
            rows.append({"kind": "stage", "name": name, "count": 1, "first": d, "last": d, "min": d, "max": d,
                         "first_step": None, "last_step": None, "steps": [None], "values": [d]})
    return rows


@click.group()
def monitor() -> None:
    """Metrics of runs and servers: list, summarize, compare, plot.

    \b
    Every pipeline run records its training/eval metrics, stage durations and
    system samples (CPU %, RSS) in the registry; every server process records
    its requests as a `serve` run.

    \b
    Examples:
      llmos monitor runs
      llmos monitor show 3f2a            # a run id or a unique prefix
      llmos monitor compare 3f2a 9c01
      llmos monitor plot 3f2a -o loss.png
    """


@monitor.command("runs")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N runs.")
@_json_option
def runs_cmd(limit: int, as_json: bool) -> None:
    """List recorded runs, newest first (pipelines and `serve` runs).

    \b
    Example:
      llmos monitor runs -n 5 --json
    """
    from llmos_monitor.store import list_runs, open_registry

    runs = list_runs(open_registry(), limit=limit)
    if as_json:
        _echo_json(runs)
        return
    if not runs:
        click.echo("No runs yet. Start one with: llmos run pipelines/quickstart.toml")
        return
    rows = [
        [r["id"], r.get("pipeline", "-"), r.get("status", "-"), str(r.get("started_at", "-"))[:19],
         "-" if r.get("duration_s") is None else f"{r['duration_s']:.1f}s"]
        for r in runs
    ]
    _table(rows, ["run", "pipeline", "status", "started", "duration"])


@monitor.command("show")
@click.argument("run")
@click.option("--kind", help="Only metrics of this kind (train, eval, stage, system, request, serve).")
@click.option("--points", is_flag=True, help="With --json: every recorded point, not only the summary.")
@_json_option
def show_cmd(run: str, kind: str | None, points: bool, as_json: bool) -> None:
    """Summarize a run's metrics: first, last, min, max per metric, with a sparkline.

    \b
    Example:
      llmos monitor show 3f2a
      llmos monitor show 3f2a --kind train --json --points
    """
    from llmos_monitor.store import get_run, open_registry, run_metrics
    from llmos_monitor.summary import fmt, sparkline, summarize

    reg = open_registry()
    info = get_run(reg, run)
    pts = run_metrics(reg, info["id"], kind=kind)
    rows = summarize(pts) + (_stage_rows(info) if kind in (None, "stage") else [])
    if as_json:
        data = dict(info)
        data["metrics"] = [
            {k: v for k, v in r.items() if k not in ("steps", "values")} for r in rows
        ]
        if points:
            data["points"] = pts
        _echo_json(data)
        return
    click.echo(f"{'run:':13} {info['id']}")
    for key in ("pipeline", "status", "started_at", "finished_at", "duration_s"):
        if info.get(key) is not None:
            click.echo(f"{key + ':':13} {info[key]}")
    if not rows:
        click.echo("No metrics recorded" + (f" of kind {kind!r}." if kind else "."))
        return
    table = [
        [r["kind"], r["name"], r["count"], fmt(r["first"]), fmt(r["last"]), fmt(r["min"]), fmt(r["max"]),
         sparkline(r["values"])]
        for r in rows
    ]
    _table(table, ["kind", "metric", "n", "first", "last", "min", "max", "trend"])


@monitor.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--kind", default=None, help="Only metrics of this kind (default: all but system).")
@_json_option
def compare_cmd(runs: tuple[str, ...], kind: str | None, as_json: bool) -> None:
    """Compare runs side by side: the last (and best) value of each metric.

    \b
    Example:
      llmos monitor compare 3f2a 9c01 --kind eval
    """
    from llmos.sdk import ValidationError

    from llmos_monitor.store import get_run, open_registry, run_metrics
    from llmos_monitor.summary import fmt, summarize

    if len(runs) < 2:
        raise ValidationError("compare needs at least two runs: llmos monitor compare RUN RUN...")
    reg = open_registry()
    infos = [get_run(reg, r) for r in runs]
    table: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for info in infos:
        stage_rows = _stage_rows(info) if kind in (None, "stage") else []
        for row in summarize(run_metrics(reg, info["id"], kind=kind)) + stage_rows:
            if kind is None and row["kind"] == "system":
                continue
            table.setdefault((row["kind"], row["name"]), {})[info["id"]] = {
                "last": row["last"], "min": row["min"], "max": row["max"], "count": row["count"]
            }
    if as_json:
        _echo_json({
            "runs": infos,
            "metrics": [{"kind": k, "name": n, "runs": v} for (k, n), v in table.items()],
        })
        return
    ids = [i["id"] for i in infos]
    short = [i[:12] for i in ids]
    rows = []
    for (k, n), per in table.items():
        rows.append([k, n] + [fmt(per[i]["last"]) if i in per else "-" for i in ids])
    if not rows:
        click.echo("None of these runs recorded metrics.")
        return
    _table(rows, ["kind", "metric"] + short, title="last value per run")


@monitor.command("plot")
@click.argument("run")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="PNG file to write.")
def plot_cmd(run: str, output: str) -> None:
    """Plot a run's loss, perplexity, learning rate and throughput to a PNG.

    Only the panels whose metrics the run recorded are drawn.

    \b
    Example:
      llmos monitor plot 3f2a -o curves.png
    """
    from llmos_monitor.plot import plot_points
    from llmos_monitor.store import get_run, open_registry, run_metrics

    reg = open_registry()
    info = get_run(reg, run)
    fig = plot_points(run_metrics(reg, info["id"]), output, title=f"{info.get('pipeline') or 'run'} {info['id']}")
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    click.echo(f"Wrote {output} ({', '.join(labels)})")


@monitor.command("prune")
@click.option("--older-than-days", "days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Delete serving metric rows older than this (default: LLMOS_MONITOR_RETENTION_DAYS, 14).")
@_json_option
def prune_cmd(days: float | None, as_json: bool) -> None:
    """Delete old serving metrics (the rows of `serve` runs), as servers do hourly.

    \b
    Example:
      llmos monitor prune --older-than-days 7
    """
    from llmos_monitor.serving import prune, retention_days
    from llmos_monitor.store import open_registry

    days = retention_days() if days is None else days
    deleted = prune(open_registry(), days)
    if as_json:
        _echo_json({"deleted_rows": deleted, "older_than_days": days})
    elif days <= 0:
        click.echo("LLMOS_MONITOR_RETENTION_DAYS=0: serving metrics are kept forever; nothing deleted.")
    else:
        click.echo(f"Deleted {deleted} serving metric rows older than {days:g} days.")


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (keep it local).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--refresh", default=2.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between chart updates on a running run's page.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Community index folder to show (default: the one `llmos plugin install` uses).")
@click.option("--allowed-host", "allowed_host", multiple=True, metavar="NAME",
              help="Also answer requests for this host name (repeatable; '*' for any). By default only "
                   "localhost, 127.0.0.1, [::1] and --host are answered: others get 400 (DNS rebinding).")
def ui(host: str, port: int, refresh: float, index_dir: Path | None, allowed_host: tuple[str, ...]) -> None:
    """Web dashboard: models, versions, aliases, lineage, runs with live curves, plugins.

    Everything is served from this machine (no internet needed). Stop with Ctrl-C.
    Requests whose Host header names another host are refused (a web page cannot
    read the dashboard through DNS rebinding); add names with --allowed-host.

    \b
    Example:
      llmos ui                      # then open http://127.0.0.1:8765
      llmos ui --port 9000
      llmos ui --host 0.0.0.0 --allowed-host gpu-box.lan
    """
    import socket

    import uvicorn

    from llmos.sdk import ConflictError

    from llmos_monitor.ui.app import create_app

    try:  # a clear error before anything starts (uvicorn would log a traceback-like line)
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ConflictError(f"cannot serve on {host}:{port} ({exc.strerror or exc}): pick another --port") from exc
    from llmos_monitor.ui.app import allowed_hosts_for

    app = create_app(poll_ms=int(refresh * 1000), index_dir=index_dir,
                     allowed_hosts=allowed_hosts_for(host, allowed_host))
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Warning: the dashboard has no login; binding {host} exposes it to the network", err=True)
    click.echo(f"llmos dashboard on http://{host}:{port}  (Ctrl-C to stop)", err=False)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind (taken in between)
        raise ConflictError(f"cannot serve on {host}:{port} (in use or not allowed): pick another --port") from exc
