"""``llmos run`` (run a pipeline file) and ``llmos runs`` (look at recorded runs)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from llmos.cli._output import echo_json, json_option, make_console


@click.command("run")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting, e.g. stages.train.config.max_steps=50 or pipeline.seed=3 (repeatable; "
                   "values are TOML: 3, 1e-3, true, \"text\", [1, 2]).")
@click.option("--resume", "resume", metavar="RUN_ID",
              help="Continue an interrupted or failed run (same run id, workdir and settings; --set applies on top).")
@click.option("--nproc", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Data-parallel processes for training stages (DDP through torchrun; gloo on CPU).")
@click.option("--check", is_flag=True, help="Only validate the file (components and settings) and list its stages.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@json_option
def run(file: str | None, overrides: tuple[str, ...], resume: str | None, nproc: int, check: bool, quiet: bool,
        as_json: bool) -> None:
    """Run a pipeline file: its stages in order, recorded in the registry.

    Every problem in the file (unknown components, bad settings, duplicate stage
    ids) is reported with its location before any work starts. Progress shows
    steps, loss, tokens/s and ETA; a summary table follows. Ctrl-C stops at the
    next step with a checkpoint; the run can then be resumed.

    \b
    Examples:
      llmos run pipelines/quickstart.toml
      llmos run pipelines/tiny.toml --set stages.train.config.max_steps=50 --set pipeline.seed=3
      llmos run pipelines/quickstart.toml --check
      llmos run --resume 20261123-101500-1a2b3c
      llmos run pipelines/tiny.toml --nproc 2          # DDP training with 2 processes
    """
    from llmos.errors import ValidationError
    from llmos.pipeline.spec import load_pipeline, validate_pipeline

    if file is None and resume is None:
        raise ValidationError("give a pipeline FILE (e.g. pipelines/quickstart.toml) or --resume RUN_ID")
    registry = None
    if resume:
        from llmos.registry import open_registry

        registry = open_registry()
        info = registry.get_run(resume)
        _check_secrets_given(info, overrides)
        pipe = validate_pipeline(info.config, overrides, source=f"run {info.id}")
        if file is not None:
            named = load_pipeline(file).name
            if named != pipe.name:
                raise ValidationError(f"run {info.id} is a run of pipeline {pipe.name!r}, but {file} is {named!r}")
        resume = info.id
    else:
        assert file is not None
        pipe = load_pipeline(file, overrides)
    if check:
        if as_json:
            echo_json({"pipeline": pipe.name, "valid": True, "stages": [s.to_dict() for s in pipe.stages]})
        else:
            click.echo(f"{pipe.source}: valid, {len(pipe.stages)} stages")
            _table([(s.id, s.use, s.plugin) for s in pipe.stages], ["stage", "component", "plugin"])
        return

    from llmos.pipeline.display import Display
    from llmos.pipeline.runner import run_pipeline

    display = Display(quiet=quiet or as_json)
    if as_json:  # stdout is for the JSON document: what stages print goes to stderr
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            result = run_pipeline(pipe, resume=resume, registry=registry, display=display, nproc=nproc)
    else:
        result = run_pipeline(pipe, resume=resume, registry=registry, display=display, nproc=nproc)
    if as_json:
        echo_json(result.to_dict())
    else:
        _print_summary(result)
    _exit_for(result)


def _check_secrets_given(info: Any, overrides: tuple[str, ...]) -> None:
    """Secrets in a run's settings are stored masked: resuming needs them given again."""
    from llmos.errors import ValidationError
    from llmos.redact import masked_paths

    given = {o.partition("=")[0].strip() for o in overrides}
    missing = [p for p in masked_paths(info.config) if p not in given]
    if missing:
        raise ValidationError(
            f"run {info.id}'s settings held secrets, which are never stored ({', '.join(missing)}): "
            f"give them again, e.g. --set {missing[0]}=VALUE"
        )


def _exit_for(result: Any) -> None:
    from llmos.cli import CliError

    if result.status == "completed":
        return
    if result.status == "interrupted":
        click.echo(f"Interrupted. Resume with: llmos run --resume {result.run_id}", err=True)
        sys.exit(130)
    if os.environ.get("LLMOS_DEBUG") and result.error is not None:
        import traceback

        traceback.print_exception(result.error)
    failed = next((s for s in result.stages if s.status == "failed"), None)
    where = f"stage {failed.id!r} ({failed.use}) failed: {failed.error}" if failed else f"run failed: {result.error}"
    raise CliError(f"{where} (run {result.run_id}; LLMOS_DEBUG=1 shows the traceback; after fixing, "
                   f"resume with: llmos run --resume {result.run_id})")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


def _key_metrics(result: Any) -> str:
    if not isinstance(result, dict):
        return _fmt(result)[:60]
    keep = [(k, v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    order = {k: i for i, k in enumerate(_PREFERRED)}
    keep.sort(key=lambda kv: order.get(kv[0], len(order)))  # stable: the step's own order after these
    return ", ".join(f"{k}={_fmt(v)}" for k, v in keep[:3])


#: metrics shown first in summaries
_PREFERRED = ("val_ppl", "ppl_vs_unigram", "val_loss", "version", "steps", "train_tokens", "params")


def _print_summary(result: Any) -> None:
    from rich.table import Table

    console = make_console()
    table = Table(title=f"run {result.run_id} · {result.pipeline} · {result.status} · {result.duration_s:.1f}s",
                  header_style="bold")
    for col in ("stage", "component", "status", "time", "key results"):
        table.add_column(col, overflow="fold")
    for s in result.stages:
        table.add_row(s.id, s.use, s.status, f"{s.duration_s:.1f}s", s.error or _key_metrics(s.result))
    console.print(table)
    if result.versions:
        console.print("versions registered: " + ", ".join(result.versions))
    if result.metrics:
        console.print("final metrics: " + _key_metrics(result.metrics))
    console.print(f"details: llmos runs show {result.run_id}")


# ---------------------------------------------------------------------------
# llmos runs
# ---------------------------------------------------------------------------


@click.group("runs")
def runs() -> None:
    """Recorded pipeline runs: list, show, compare.

    \b
    Examples:
      llmos runs list --pipeline quickstart
      llmos runs show 20261123-101500-1a2b3c      # a unique prefix is enough
      llmos runs compare RUN_A RUN_B --json
    """


def _table(rows: list[tuple[Any, ...]], headers: list[str], title: str | None = None) -> None:
    """Like echo_table, but the first column (run ids, names) is never cut or wrapped."""
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    first = max([len(str(r[0])) for r in rows] + [len(headers[0])])
    table.add_column(headers[0], no_wrap=True, min_width=first)
    for h in headers[1:]:
        table.add_column(h, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    make_console(soft_wrap=False).print(table)


def _metric_summary(reg: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """``{"kind/name": {"last", "min", "max", "count", "step"}}`` from the run's time series."""
    out: dict[str, dict[str, Any]] = {}
    for p in reg.run_metrics(run_id):
        key = f"{p['kind']}/{p['name']}"
        m = out.setdefault(key, {"last": None, "min": p["value"], "max": p["value"], "count": 0, "step": None})
        m["last"], m["step"] = p["value"], p["step"]
        m["min"], m["max"] = min(m["min"], p["value"]), max(m["max"], p["value"])
        m["count"] += 1
    return out


def _final_metrics(info: Any) -> dict[str, Any]:
    metrics = (info.summary or {}).get("metrics") or {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


@runs.command("list")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option("--status", type=click.Choice(["running", "completed", "failed", "interrupted", "dead", "lost"]),
              help="Only this status (dead: its process is gone from this host; lost: no heartbeat from its "
                   "host for LLMOS_RUN_LOST_AFTER_S, default 120 s; both can be resumed).")
@click.option("--limit", type=click.IntRange(1, 10000), default=30, show_default=True)
@click.option("--children/--no-children", default=False, help="Include child runs (grid-search trials).")
@json_option
def list_runs(pipeline: str | None, status: str | None, limit: int, children: bool, as_json: bool) -> None:
    """List runs, newest first.

    \b
    Examples:
      llmos runs list
      llmos runs list --pipeline quickstart --status completed --json
    """
    from llmos.registry import open_registry

    reg = open_registry()
    infos = [i for i in reg.list_runs(pipeline=pipeline, status=status, limit=limit * 4 if not children else limit)
             if children or not i.parent_run_id][:limit]
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo("No runs yet. Start one with: llmos run pipelines/quickstart.toml")
        return
    rows = []
    for i in infos:
        m = _final_metrics(i)
        rows.append((i.id, i.pipeline, i.status, i.started_at.strftime("%m-%d %H:%M") if i.started_at else "",
                     f"{i.duration_s:.0f}s" if i.duration_s is not None else "",
                     _fmt(m.get("val_ppl")), ", ".join((i.summary or {}).get("versions") or []),
                     i.parent_run_id or ""))
    headers = ["run", "pipeline", "status", "started", "time", "val_ppl", "versions"]
    if children:
        headers.append("parent")
    else:
        rows = [r[:-1] for r in rows]
    _table(rows, headers)


@runs.command("show")
@click.argument("run_id")
@json_option
def show(run_id: str, as_json: bool) -> None:
    """Show one run: settings, stages, metrics, versions and child runs.

    \b
    Examples:
      llmos runs show 20261123-101500-1a2b3c
      llmos runs show 20261123-1015 --json     # a unique prefix is enough
    """
    from llmos.registry import open_registry

    reg = open_registry()
    info = reg.get_run(run_id)
    metrics = _metric_summary(reg, info.id)
    kids = [k for k in reg.list_runs(limit=10000) if k.parent_run_id == info.id]
    if as_json:
        echo_json({**info.to_dict(), "metrics": metrics, "children": [k.to_dict() for k in kids]})
        return
    summary = info.summary or {}
    click.echo(f"run:       {info.id}")
    click.echo(f"pipeline:  {info.pipeline}")
    click.echo(f"status:    {info.status}" + (f" ({summary['error']})" if summary.get("error") else ""))
    click.echo(f"started:   {info.started_at:%Y-%m-%d %H:%M:%S}" if info.started_at else "started:   -")
    if info.duration_s is not None:
        click.echo(f"duration:  {info.duration_s:.1f}s")
    if info.parent_run_id:
        click.echo(f"parent:    {info.parent_run_id}")
    click.echo(f"workdir:   {info.workdir or '-'}")
    click.echo("plugins:   " + ", ".join(f"{k} {v}" for k, v in sorted(info.plugins.items())))
    click.echo(f"versions:  {', '.join(info.versions) or '-'}")
    if info.stages:
        click.echo("")
        rows = [(s["stage_id"], s["component"], s["status"], f"{s['duration_s'] or 0:.1f}s",
                 (s.get("result") or {}).get("attempt", ""),
                 (s.get("result") or {}).get("error") or _key_metrics((s.get("result") or {}).get("result")))
                for s in info.stages]
        _table(rows, ["stage", "component", "status", "time", "attempt", "results"], title="stages")
    if metrics:
        click.echo("")
        rows = [(k, m["count"], m["step"] if m["step"] is not None else "", _fmt(m["last"]), _fmt(m["min"]),
                 _fmt(m["max"])) for k, m in sorted(metrics.items())]
        _table(rows, ["metric", "points", "last step", "last", "min", "max"], title="metrics")
    if kids:
        click.echo("")
        rows = [(k.id, k.status, (k.config or {}).get("trial", ""), _fmt(_final_metrics(k).get("val_loss")))
                for k in kids]
        _table(rows, ["child run", "status", "name", "val_loss"], title="child runs")


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@json_option
def compare(run_ids: tuple[str, ...], as_json: bool) -> None:
    """Compare runs side by side: status, time, final metrics and the settings that differ.

    \b
    Example:
      llmos runs compare 20261123-1015 20261123-1042
    """
    from llmos.errors import ValidationError
    from llmos.registry import open_registry

    if len(run_ids) < 2:
        raise ValidationError("give at least two runs to compare (see: llmos runs list)")
    reg = open_registry()
    infos = [reg.get_run(r) for r in run_ids]
    finals = [_final_metrics(i) for i in infos]
    evals = [_metric_summary(reg, i.id) for i in infos]
    from llmos.runs import flatten_config

    configs = [flatten_config(i.config) for i in infos]
    metric_names = sorted({k for f in finals for k in f})
    config_keys = sorted({k for c in configs for k in c})
    differing = [k for k in config_keys if len({repr(c.get(k)) for c in configs}) > 1]
    data = {
        "runs": [i.id for i in infos],
        "status": [i.status for i in infos],
        "duration_s": [i.duration_s for i in infos],
        "metrics": {m: [f.get(m) for f in finals] for m in metric_names},
        "best_val_loss": [(e.get("eval/val_loss") or {}).get("min") for e in evals],
        "config_differences": {k: [c.get(k) for c in configs] for k in differing},
        "versions": [i.versions for i in infos],
    }
    if as_json:
        echo_json(data)
        return
    rows: list[tuple[Any, ...]] = [("status", *data["status"]),
                                   ("time", *(f"{d:.1f}s" if d is not None else "" for d in data["duration_s"]))]
    rows += [(m, *(_fmt(v) for v in vals)) for m, vals in data["metrics"].items()]
    rows.append(("best val_loss", *(_fmt(v) for v in data["best_val_loss"])))
    rows += [(f"config {k}", *(_fmt(v) for v in vals)) for k, vals in data["config_differences"].items()]
    rows.append(("versions", *(", ".join(v) for v in data["versions"])))
    _table(rows, ["", *(i.id for i in infos)])
