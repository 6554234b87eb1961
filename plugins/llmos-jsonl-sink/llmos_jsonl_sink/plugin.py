"""Hook module of llmos-jsonl-sink (light: imports llmos only).

Where records go:

- ``$LLMOS_JSONL_PATH`` set: every record of the process, to that one file;
- otherwise records of a pipeline run go to ``<run workdir>/metrics.jsonl`` (or the
  path given to the ``monitoring.jsonl`` step), and records outside any run
  (servers, samplers of other processes) to ``$LLMOS_HOME/jsonl/<source>-<pid>.jsonl``.

Each line is one JSON object: ``{"event", "ts", "run_id", "step", "metrics"}``
plus ``"source"`` (``llmos_after_metrics``) or ``"request"`` (``llmos_after_request``).
"""

from __future__ import annotations

from typing import Any

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_monitoring_steps(register: Any) -> None:
    from llmos_jsonl_sink.sink import JsonlConfig

    register("jsonl", "llmos_jsonl_sink.sink:JsonlStep", config=JsonlConfig,
             description="Append every metric of this run to a JSON Lines file you choose")


@hookimpl
def llmos_before_run(ctx: Any) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.run_started(ctx)


@hookimpl
def llmos_after_run(ctx: Any, status: str) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.run_ended(ctx, status)


@hookimpl
def llmos_after_train_step(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.write_run(ctx, "train_step", step, metrics)


@hookimpl
def llmos_after_evaluate(ctx: Any, step: int, metrics: dict[str, float]) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.write_run(ctx, "evaluate", step, metrics)


@hookimpl
def llmos_after_metrics(source: str, step: int | None, metrics: dict[str, float]) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.write_source(source, step, metrics)


@hookimpl
def llmos_after_request(request: dict[str, Any], metrics: dict[str, float]) -> None:
    from llmos_jsonl_sink import sink

    sink.SINK.write_request(request, metrics)
