"""Hook module of llmos-monitor (loaded by ``llmos --help``: keep it light).

Lifecycle hooks hand over to :mod:`llmos_monitor.runtime` (imported on the first
call); commands live in :mod:`llmos_monitor.cli`.
"""

from __future__ import annotations

from typing import Any

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_monitoring_steps(register: Any) -> None:
    from llmos_monitor.config import PlotConfig, PrometheusConfig

    register("prometheus", "llmos_monitor.prometheus:PrometheusStep", config=PrometheusConfig,
             description="Serve Prometheus /metrics (train, eval, system, serving) for the rest of the run")
    register("plot", "llmos_monitor.plot:PlotStep", config=PlotConfig,
             description="Plot the run's loss, perplexity, learning rate and throughput to a PNG")


@hookimpl
def llmos_before_run(ctx: Any) -> None:
    from llmos_monitor import runtime

    runtime.on_run_start(ctx)


@hookimpl
def llmos_after_stage(ctx: Any, stage: Any, duration_s: float) -> None:
    from llmos_monitor import runtime

    runtime.after_stage(ctx, stage, duration_s)


@hookimpl
def llmos_after_run(ctx: Any) -> None:
    from llmos_monitor import runtime

    runtime.on_run_end(ctx)


@hookimpl
def llmos_after_train_step(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    from llmos_monitor import runtime

    runtime.on_train_step(ctx, step, metrics)


@hookimpl
def llmos_after_evaluate(ctx: Any, metrics: dict[str, float]) -> None:
    from llmos_monitor import runtime

    runtime.on_evaluate(ctx, metrics)


@hookimpl
def llmos_after_request(request: dict[str, Any], metrics: dict[str, float]) -> None:
    from llmos_monitor import runtime

    runtime.on_request_served(request, metrics)


@hookimpl
def llmos_after_metrics(source: str, step: int | None, metrics: dict[str, float]) -> None:
    from llmos_monitor import runtime

    runtime.on_metrics(source, step, metrics)


@hookimpl
def llmos_register_commands(cli: Any) -> None:
    # imported when used: ``llmos --help`` shows these lines without importing the module
    cli.add_lazy_command("monitor", "llmos_monitor.cli:monitor",
                         "Metrics of runs and servers: list, summarize, compare, plot.")
    cli.add_lazy_command("ui", "llmos_monitor.cli:ui",
                         "Web dashboard: models, versions, aliases, lineage, runs with live curves, plugins.")
