"""The llmos plugin contract: every hook a plugin may implement.

Read top to bottom. Three groups:

1. **Provider hooks**, one per stage (data, model, optimizer, compression,
   deployment, monitoring). The core passes a ``register`` callback and the
   plugin calls it once per component it provides::

       @hookimpl
       def llmos_register_models(register):
           register("llama", "llmos_models.build:build_llama",
                    config=LlamaConfig, description="Llama-style decoder")

   ``register(name, factory, *, config=None, description="")``:

   - ``name`` — component name, unique within the stage (``^[a-z0-9][a-z0-9_.-]*$``).
     Pipelines refer to it as ``"<stage>.<name>"`` (e.g. ``"model.llama"``), or as
     ``"<plugin>:<stage>.<name>"`` when two plugins provide the same name.
   - ``factory`` — a callable ``factory(config) -> object`` or a ``"module:attr"``
     string naming one; strings are imported only when the component is used, so
     heavy libraries (torch, transformers) stay out of ``llmos --help``.
   - ``config`` — a pydantic model class validating the component's settings
     (every field needs a default or is required in the pipeline file); ``None``
     means "takes no settings".
   - ``description`` — one line shown by ``llmos components``.

   What the factory's object must do depends on where it is used: in a
   pipeline it is a *step* — it has ``run(ctx)`` (or is callable as
   ``obj(ctx)``) and reads/writes :class:`llmos.context.RunContext` artifacts.
   The conventions between the standard plugins (which artifact keys each stage
   reads and writes) are documented in ``DESIGN.md``.

2. **Lifecycle hooks**, called by the pipeline runner, the trainer and the
   server. They are notifications: return values are ignored, and an exception
   inside one plugin's implementation is reported and isolated — it never
   stops the run or other plugins.

3. **The CLI hook**: plugins add click commands.

Rules (pluggy conventions): implementations may accept any subset of a hook's
arguments (new arguments can be added without breaking old plugins);
arguments are never renamed or removed; results never depend on plugin order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmos import hookspec

if TYPE_CHECKING:  # pragma: no cover - typing only
    import click

    from llmos.context import RunContext

#: The register callback passed to every provider hook.
Register = Callable[..., None]


# ---------------------------------------------------------------------------
# 1. Provider hooks: one per stage
# ---------------------------------------------------------------------------


@hookspec
def llmos_register_data(register: Register) -> None:
    """Provide **data** components: corpora, tokenizers, preprocessors.

    :param register: call ``register(name, factory, config=..., description=...)``
        once per component.
    :returns: nothing (results are delivered through ``register``).

    Example::

        @hookimpl
        def llmos_register_data(register):
            register("corpus", "llmos_data.corpus:CorpusStep",
                     config=CorpusConfig, description="Text from files and folders")
    """


@hookspec
def llmos_register_models(register: Register) -> None:
    """Provide **model** components: architectures built from config, loaders.

    :param register: see :func:`llmos_register_data`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_models(register):
            register("llama", "llmos_models.build:BuildStep", config=LlamaConfig,
                     description="Llama-style decoder-only model from a size preset")
    """


@hookspec
def llmos_register_optimizers(register: Register) -> None:
    """Provide **optimizer** components: optimizers, LR schedules, training loops,
    hyper-parameter searches.

    :param register: see :func:`llmos_register_data`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_optimizers(register):
            register("train", "llmos_train.loop:TrainStep", config=TrainConfig,
                     description="Training loop with AdamW and warmup")
    """


@hookspec
def llmos_register_compressors(register: Register) -> None:
    """Provide **compression** components: quantizers, pruners, distillers.

    :param register: see :func:`llmos_register_data`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_compressors(register):
            register("int8", "llmos_compress.quant:Int8Step", config=Int8Config,
                     description="Dynamic int8 quantization of nn.Linear layers")
    """


@hookspec
def llmos_register_deployers(register: Register) -> None:
    """Provide **deployment** components: exporters, servers, routers.

    :param register: see :func:`llmos_register_data`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_deployers(register):
            register("onnx", "llmos_export.onnx:OnnxExportStep", config=OnnxConfig,
                     description="Export to ONNX and check logits with ONNX Runtime")
    """


@hookspec
def llmos_register_monitors(register: Register) -> None:
    """Provide **monitoring** components: metric sinks, system samplers, reports.

    :param register: see :func:`llmos_register_data`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_monitors(register):
            register("jsonl", "llmos_jsonl_sink:JsonlSink", config=JsonlConfig,
                     description="Append every metric to a JSON Lines file")
    """


# ---------------------------------------------------------------------------
# 2. Lifecycle hooks (notifications; exceptions are isolated per plugin)
# ---------------------------------------------------------------------------


@hookspec
def llmos_on_run_start(ctx: RunContext) -> None:
    """A pipeline run starts (after validation, before the first stage).

    :param ctx: the run's context (``ctx.run_id``, ``ctx.spec``, ``ctx.workdir``).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_run_start(ctx):
            print(f"run {ctx.run_id} of {ctx.spec.name} started")
    """


@hookspec
def llmos_on_run_end(ctx: RunContext, status: str, error: BaseException | None) -> None:
    """A pipeline run ends.

    :param ctx: the run's context.
    :param status: ``"completed"``, ``"failed"`` or ``"interrupted"``.
    :param error: the exception for a failed or interrupted run, else ``None``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_run_end(ctx, status):
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
def llmos_on_train_step(ctx: RunContext, step: int, metrics: dict[str, float]) -> None:
    """A training step (an optimizer update) finished.

    Called by training loops every ``log_every`` steps, not necessarily every
    step. Keep implementations cheap: they run inside the training loop.

    :param ctx: the run's context.
    :param step: global optimizer step, starting at 1.
    :param metrics: e.g. ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_train_step(step, metrics):
            writer.add_scalar("loss", metrics["loss"], step)
    """


@hookspec
def llmos_on_evaluate(ctx: RunContext, step: int, metrics: dict[str, float]) -> None:
    """An evaluation finished.

    :param ctx: the run's context.
    :param step: global optimizer step at which the evaluation ran.
    :param metrics: e.g. ``val_loss``, ``val_ppl``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_evaluate(step, metrics):
            print(f"step {step}: val ppl {metrics['val_ppl']:.2f}")
    """


@hookspec
def llmos_on_version_registered(version: Any) -> None:
    """A model version was committed to the registry.

    :param version: the registered version (``version.model``, ``version.number``,
        ``version.metrics``, ``version.parents``...).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_version_registered(version):
            print(f"registered {version.model}:{version.number}")
    """


@hookspec
def llmos_on_alias_moved(
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
        def llmos_on_alias_moved(model, alias, new_version):
            audit.write(f"{model}@{alias} -> {new_version}")
    """


@hookspec
def llmos_on_request_served(request: dict[str, Any], metrics: dict[str, float]) -> None:
    """A server finished answering a request.

    :param request: ``model``, ``version``, ``endpoint``, ``status``, ``stream``.
    :param metrics: e.g. ``prompt_tokens``, ``completion_tokens``,
        ``time_to_first_token_s``, ``latency_s``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_request_served(request, metrics):
            latency.observe(metrics["latency_s"])
    """


@hookspec
def llmos_on_metrics(source: str, step: int | None, metrics: dict[str, float]) -> None:
    """Metrics from any long-running part (system sampler, server, custom stage).

    Metric *sinks* (CSV, TensorBoard, ...) implement this to see every metric
    that is not a training step or evaluation.

    :param source: who produced them, e.g. ``"system"``, ``"serve"``, ``"run:<id>"``.
    :param step: a step or sequence number, or ``None``.
    :param metrics: name → value.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_on_metrics(source, metrics):
            statsd.gauge_many(source, metrics)
    """


# ---------------------------------------------------------------------------
# 3. CLI
# ---------------------------------------------------------------------------


@hookspec
def llmos_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``llmos`` command line.

    Keep the command's module light: import heavy libraries inside the command
    function, so ``llmos --help`` stays fast.

    :param cli: the root ``llmos`` click group; call ``cli.add_command(cmd)``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")
    """
