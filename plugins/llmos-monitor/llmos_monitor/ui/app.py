"""The ``llmos ui`` web dashboard (FastAPI + server-rendered Jinja2 pages).

Pages: ``/`` overview, ``/models``, ``/models/{name}`` (versions, aliases, lineage
graph), ``/models/{name}/versions/{n}`` (files, sizes, metrics, diff to parent),
``/runs`` (search and filters, select runs to compare), ``/runs/{id}`` (live-updating
charts, the versions it made), ``/compare?runs=A,B`` and ``/compare?versions=m:1,m:2``
(metrics side by side, overlaid charts), ``/plugins``, ``/community``.

JSON: ``/api/runs``, ``/api/runs/{id}`` (run + every metric point, exactly as
recorded), ``/api/runs/{id}/series`` (points grouped per metric, polled by the
charts), ``/api/models``, ``/api/models/{name}``.

Every asset (CSS, the chart script, the icon) is served from the package: the
dashboard works with no internet access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _filesize(n: Any) -> str:
    try:
        size = float(n)
    except (TypeError, ValueError):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _num(x: Any) -> Any:
    from llmos_monitor.summary import fmt

    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return x
    return fmt(float(x))


def _prettyjson(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)  # escaped by autoescape


#: the names a dashboard on loopback answers to (DNS rebinding: any other Host is refused)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lowercased: ``[::1]:8765`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def allowed_hosts_for(host: str, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The host names a dashboard bound to ``host`` accepts: loopback names, ``host``
    itself (unless it is a wildcard address) and ``extra`` (``*`` accepts any)."""
    out = list(LOOPBACK_HOSTS)
    for name in (host, *extra):
        name = host_name(name) if not name.startswith("[") else name.strip("[]").lower()
        if name and name not in ("0.0.0.0", "::") and name not in out:
            out.append(name)
    return out


class HostCheck:
    """ASGI middleware: answer 400 to a request whose ``Host`` header is not one of
    ``allowed`` (a page on ``evil.example`` rebound to 127.0.0.1 sends ``Host: evil.example``)."""

    def __init__(self, app: Any, allowed: list[str]) -> None:
        self.app, self.allowed = app, {a.lower() for a in allowed}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if host_name(raw) not in self.allowed:
                from starlette.responses import PlainTextResponse

                shown = raw[:100].encode("ascii", "backslashreplace").decode()
                resp = PlainTextResponse(
                    f"Host {shown!r} is not allowed: this dashboard answers to {', '.join(sorted(self.allowed))} "
                    "(start it with --allowed-host NAME to add one)\n", status_code=400)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(registry: Any = None, *, poll_ms: int = 2000, index_dir: Path | None = None,
               allowed_hosts: list[str] | None = None) -> Any:
    """Build the dashboard app.

    :param registry: a registry object (default: ``llmos_registry.open_registry()`` on first use).
    :param poll_ms: how often a run page polls for new points.
    :param index_dir: the community index folder (default: the one ``llmos plugin install`` reads).
    :param allowed_hosts: ``Host`` names to answer (default: the loopback names); others get a 400.
    """
    import jinja2
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    from llmos.sdk import LlmosError, NotFoundError

    from llmos_monitor import store
    from llmos_monitor.summary import summarize
    from llmos_monitor.ui import data

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.ChainableUndefined,
    )
    env.filters["filesize"] = _filesize
    env.filters["num"] = _num
    env.filters["prettyjson"] = _prettyjson

    app = FastAPI(title="llmos dashboard", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_middleware(HostCheck, allowed=list(allowed_hosts or LOOPBACK_HOSTS))
    state: dict[str, Any] = {"reg": registry}

    def reg() -> Any:
        if state["reg"] is None:
            state["reg"] = store.open_registry()
        return state["reg"]

    def page(name: str, nav: str = "", status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(nav=nav, **ctx), status_code=status)

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    @app.exception_handler(LlmosError)
    async def llmos_error(request: Request, exc: LlmosError) -> Response:
        code = 404 if isinstance(exc, NotFoundError) else 400
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=code)
        return page("error.html", status=code, code=code, message=exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        # one line naming the parameter and what it must be (never a 500, never a wall of JSON)
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        message = "bad request: " + "; ".join(problems)
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=400)
        return page("error.html", status=400, code=400, message=message)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((HERE / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml")

    # -- pages -----------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        ms = data.models(reg())
        runs = store.list_runs(reg(), limit=10)
        from llmos.sdk import get_manager

        return page("index.html", "", models=ms, runs=runs, n_versions=sum(len(m["versions"]) for m in ms),
                    n_plugins=len(get_manager().plugins))

    @app.get("/models", response_class=HTMLResponse, include_in_schema=False)
    def models_page(q: str = Query("", max_length=200)) -> HTMLResponse:
        return page("models.html", "Models", models=data.filter_models(data.models(reg()), q), q=q)

    @app.get("/models/{name}", response_class=HTMLResponse, include_in_schema=False)
    def model_page(name: str) -> HTMLResponse:
        m = data.model(reg(), name)
        return page("model.html", "Models", model=m, lineage_svg=data.lineage_svg(m))

    @app.get("/models/{name}/versions/{number}", response_class=HTMLResponse, include_in_schema=False)
    def version_page(name: str, number: int) -> HTMLResponse:
        v = data.version(reg(), name, number)
        parent, diff, diff_error, tables, summary = None, None, None, [], {}
        try:
            parent, diff = data.diff_to_parent(reg(), v)
        except LlmosError as exc:
            diff_error = exc.message
        if diff is not None:
            tables, summary = data.diff_tables(diff)
        parent_url = None
        if parent and ":" in parent:
            pm, pn = parent.rsplit(":", 1)
            parent_url = f"/models/{pm}/versions/{pn}"
        plain, tasks = data.by_task(v["metrics"])
        return page("version.html", "Models", v=v, parent=parent, parent_url=parent_url,
                    diff_tables=tables, diff_summary=summary, diff_error=diff_error, plain_metrics=plain,
                    tasks=tasks, promotions=data.promotion_history(reg(), v["ref"]))

    @app.get("/runs", response_class=HTMLResponse, include_in_schema=False)
    def runs_page(q: str = Query("", max_length=200), status: str = Query("", max_length=32),
                  pipeline: str = Query("", max_length=256)) -> HTMLResponse:
        every = store.list_runs(reg(), limit=500)
        runs = data.filter_runs(every, q, status, pipeline)[:200]
        return page("runs.html", "Runs", runs=runs, q=q, status_filter=status, pipeline=pipeline, selectable=True,
                    pipelines=sorted({r.get("pipeline") or "" for r in every}),
                    statuses=sorted({r.get("status") or "" for r in every}))

    @app.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run_id: str) -> HTMLResponse:
        run = store.get_run(reg(), run_id)
        rows = summarize(store.run_metrics(reg(), run["id"]))
        return page("run.html", "Runs", run=run, summary=rows, poll_ms=poll_ms, versions=data.run_versions(run))

    def _refs(raw: str, what: str) -> list[str]:
        refs = [r.strip() for r in raw.split(",") if r.strip()]
        if len(refs) < 2 or len(refs) > 8:
            from llmos.sdk import ValidationError

            raise ValidationError(f"compare 2 to 8 {what}, separated by commas (got {len(refs)})")
        return list(dict.fromkeys(refs))

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(runs: str = Query("", max_length=2000), versions: str = Query("", max_length=2000),
                     run: list[str] = Query([], max_length=8), version: list[str] = Query([], max_length=8)
                     ) -> HTMLResponse:
        # the Runs and model pages' check boxes send run=A&run=B (version=m:1&version=m:2)
        runs = runs or ",".join(run)
        versions = versions or ",".join(version)
        if versions:
            cmp = data.compare_versions(reg(), _refs(versions, "versions"))
            return page("compare.html", "Runs", kind="versions", cmp=cmp)
        cmp = data.compare_runs(reg(), _refs(runs, "runs"))
        return page("compare.html", "Runs", kind="runs", cmp=cmp,
                    ids=",".join(r["id"] for r in cmp["runs"]))

    @app.get("/plugins", response_class=HTMLResponse, include_in_schema=False)
    def plugins_page() -> HTMLResponse:
        return page("plugins.html", "Plugins", plugins=data.plugins())

    @app.get("/community", response_class=HTMLResponse, include_in_schema=False)
    def community_page() -> HTMLResponse:
        source, entries, error = data.community(index_dir)
        return page("community.html", "Community", source=source, entries=entries, error=error)

    # -- JSON --------------------------------------------------------------------------

    @app.get("/api/runs")
    def api_runs(limit: int = Query(100, ge=1, le=10_000), q: str = Query("", max_length=200),
                 status: str = Query("", max_length=32), pipeline: str = Query("", max_length=256)
                 ) -> list[dict[str, Any]]:
        if q or status or pipeline:
            return data.filter_runs(store.list_runs(reg(), limit=10_000), q, status, pipeline)[:limit]
        return store.list_runs(reg(), limit=limit)

    @app.get("/api/runs/{run_id}")
    def api_run(run_id: str, name: str | None = Query(None, max_length=128),
                kind: str | None = Query(None, max_length=32)) -> dict[str, Any]:
        run = store.get_run(reg(), run_id)
        return {"run": run, "points": store.run_metrics(reg(), run["id"], name=name, kind=kind)}

    @app.get("/api/runs/{run_id}/series")
    def api_series(run_id: str) -> dict[str, Any]:
        run = store.get_run(reg(), run_id)
        groups = store.series(store.run_metrics(reg(), run["id"]))
        return {"run": run, "series": list(groups.values())}

    @app.get("/api/compare")
    def api_compare(runs: str = Query("", max_length=2000), versions: str = Query("", max_length=2000)
                    ) -> dict[str, Any]:
        if versions:
            return data.compare_versions(reg(), _refs(versions, "versions"))
        return data.compare_runs(reg(), _refs(runs, "runs"))

    @app.get("/api/models")
    def api_models(q: str = Query("", max_length=200)) -> list[dict[str, Any]]:
        return data.filter_models(data.models(reg()), q)

    @app.get("/api/models/{name}")
    def api_model(name: str) -> dict[str, Any]:
        return data.model(reg(), name)

    @app.get("/api/plugins")
    def api_plugins() -> list[dict[str, Any]]:
        return data.plugins()

    return app
