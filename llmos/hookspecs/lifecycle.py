"""Hook specs, group 3: lifecycle notifications (exceptions are isolated per plugin).

Part of the llmos plugin contract; read :mod:`llmos.hookspecs` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmos import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    from llmos.context import RunContext


@hookspec
def llmos_before_run(ctx: RunContext) -> None:
    """A pipeline run starts (after validation, before the first stage).

    :param ctx: the run's context (``ctx.run_id``, ``ctx.spec``, ``ctx.workdir``).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_before_run(ctx):
            print(f"run {ctx.run_id} of {ctx.spec.name} started")
    """


@hookspec
def llmos_after_run(ctx: RunContext, status: str, error: BaseException | None) -> None:
    """A pipeline run ends.

    :param ctx: the run's context.
    :param status: ``"completed"``, ``"failed"`` or ``"interrupted"``.
    :param error: the exception for a failed or interrupted run, else ``None``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_run(ctx, status):
            notify_slack(f"{ctx.run_id}: {status}")
    """


@hookspec
def llmos_before_stage(ctx: RunContext, stage: Any) -> None:
    """A pipeline stage is about to run.

    :param ctx: the run's context.
    :param stage: the stage's spec (``stage.id``, ``stage.use``, ``stage.config``).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_before_stage(stage):
            print("starting", stage.id)
    """


@hookspec
def llmos_after_stage(ctx: RunContext, stage: Any, result: Any, duration_s: float) -> None:
    """A pipeline stage finished successfully.

    :param ctx: the run's context.
    :param stage: the stage's spec.
    :param result: what the step returned (usually a dict of metrics, or ``None``).
    :param duration_s: wall time of the stage in seconds.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_stage(stage, duration_s):
            print(f"{stage.id} took {duration_s:.1f}s")
    """


@hookspec
def llmos_on_stage_error(ctx: RunContext, stage: Any, error: BaseException) -> None:
    """A pipeline stage raised (including ``KeyboardInterrupt``).

    :param ctx: the run's context.
    :param stage: the stage's spec.
    :param error: the exception.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_stage_error(stage, error):
            log.error("stage %s failed: %s", stage.id, error)
    """


@hookspec
def llmos_after_train_step(ctx: RunContext, step: int, metrics: dict[str, float]) -> None:
    """A training step (an optimizer update) finished.

    Called by training loops every ``log_every`` steps, not necessarily every
    step. Keep implementations cheap: they run inside the training loop.

    :param ctx: the run's context.
    :param step: global optimizer step, starting at 1.
    :param metrics: e.g. ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_train_step(step, metrics):
            writer.add_scalar("loss", metrics["loss"], step)
    """


@hookspec
def llmos_after_evaluate(ctx: RunContext, step: int, metrics: dict[str, float]) -> None:
    """An evaluation finished.

    :param ctx: the run's context.
    :param step: global optimizer step at which the evaluation ran.
    :param metrics: e.g. ``val_loss``, ``val_ppl``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_evaluate(step, metrics):
            print(f"step {step}: val ppl {metrics['val_ppl']:.2f}")
    """


@hookspec
def llmos_after_version_registered(version: Any) -> None:
    """A model version was committed to the registry.

    :param version: the registered version (``version.model``, ``version.number``,
        ``version.metrics``, ``version.parents``...).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_version_registered(version):
            print(f"registered {version.model}:{version.number}")
    """


@hookspec
def llmos_after_alias_moved(
    model: str, alias: str, old_version: int | None, new_version: int | None
) -> None:
    """An alias was set, moved or removed.

    :param model: model name.
    :param alias: alias name (e.g. ``production``).
    :param old_version: the version it pointed at before, or ``None``.
    :param new_version: the version it points at now, or ``None`` if removed.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_alias_moved(model, alias, new_version):
            audit.write(f"{model}@{alias} -> {new_version}")
    """


@hookspec
def llmos_after_request(request: dict[str, Any], metrics: dict[str, float]) -> None:
    """A server finished answering a request.

    :param request: ``model``, ``version``, ``endpoint``, ``status``, ``stream``.
    :param metrics: e.g. ``prompt_tokens``, ``completion_tokens``,
        ``time_to_first_token_s``, ``latency_s``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_request(request, metrics):
            latency.observe(metrics["latency_s"])
    """


@hookspec
def llmos_after_metrics(source: str, step: int | None, metrics: dict[str, float]) -> None:
    """Metrics from any long-running part (system sampler, server, custom stage).

    Metric *sinks* (CSV, TensorBoard, ...) implement this to see every metric
    that is not a training step or evaluation (those come through
    :func:`llmos_after_train_step` and :func:`llmos_after_evaluate`).

    ``source`` strings, as the standard plugins send them:

    - ``"system:<run_id>"`` — CPU/memory/GPU samples of a pipeline run
      (llmos-monitor's sampler), e.g. ``"system:3f2a9c81d0e4"``;
    - ``"run:<run_id>:<kind>"`` — ``ctx.log_metrics(step, m, kind=<kind>)`` from a
      step with a kind other than ``"train"``/``"eval"``, e.g. ``"run:3f2a9c81d0e4:compression"``;
    - ``"serve"`` — the server's periodic gauges (``requests_running``,
      ``requests_waiting``, ``generation_tokens_per_s``); per-request metrics come
      through :func:`llmos_after_request`.

    **How a sink gets its configuration.** Lifecycle hooks take no settings.
    A sink reads (1) environment variables for process-wide settings (e.g.
    llmos-jsonl-sink's ``LLMOS_JSONL_PATH``), and (2) for per-run settings, a
    monitoring *step* it also registers (:func:`llmos_register_monitoring_steps`):
    the pipeline configures that step like any other (``[stages.metrics]
    use = "monitoring.jsonl"``, ``config.path = "..."``), and the step stores its
    validated config where the sink's hooks find it for that run (keyed by
    ``ctx.run_id``).

    :param source: who produced them: ``"system:<run_id>"``, ``"run:<run_id>:<kind>"``
        or ``"serve"`` (see above); plugins may add their own ``"<plugin>:<...>"``.
    :param step: a step or sequence number, or ``None``.
    :param metrics: name → value.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_metrics(source, metrics):
            statsd.gauge_many(source, metrics)
    """
