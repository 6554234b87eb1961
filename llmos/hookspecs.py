"""The llmos plugin contract: every hook a plugin may implement (plugin API 2).

Read top to bottom. Names follow one grammar: ``llmos_register_<what>`` for
providers (the name says what is registered), ``llmos_before_<x>`` /
``llmos_after_<x>`` / ``llmos_on_<x>_error`` for lifecycle notifications.
Four groups:

1. **Stage-step providers**, one per stage (data, model, optimizer, compression,
   deployment, monitoring): the steps a pipeline's ``use = "<stage>.<name>"``
   names. The core passes a ``register`` callback and the plugin calls it once
   per component it provides::

       @hookimpl
       def llmos_register_model_steps(register):
           register("llama", "llmos_models.build:LlamaStep",
                    config=LlamaConfig, description="Llama-style decoder")

   ``register(name, factory, *, config=None, description="")``:

   - ``name`` — component name, unique within the stage, matching
     ``^[a-z0-9][a-z0-9_-]*$`` (:data:`llmos.components.NAME_RE`).
     Pipelines refer to it as ``"<stage>.<name>"`` (e.g. ``"model.llama"``), or as
     ``"<plugin>:<stage>.<name>"`` when two plugins provide the same name.
   - ``factory`` — a callable ``factory(config) -> object`` or a ``"module:attr"``
     string naming one; strings are imported only when the component is used, so
     heavy libraries (torch, transformers) stay out of ``llmos --help``.
   - ``config`` — a pydantic model class validating the component's settings
     (every field needs a default or is required in the pipeline file); ``None``
     means "takes no settings".
   - ``description`` — one line shown by ``llmos components``.

   The factory's object is a *step*: it has ``run(ctx)`` (or is callable as
   ``obj(ctx)``) and reads/writes :class:`llmos.context.RunContext` artifacts.
   The conventions between the standard plugins (which artifact keys each stage
   reads and writes) are documented in ``DESIGN.md``.

2. **Extension points**: what a standard stage lets you swap *inside* it (an
   optimizer, an LR schedule, a data reader, an architecture, a model loader, a
   quantizer...). Same ``register(name, factory, *, config=None, description="")``
   callback, same name rule; what the factory is called with is documented on
   each hook. The standard plugins register their own built-ins through these
   hooks, exactly like an external plugin. A stage's setting names one (e.g.
   ``optimizer = "lion"``), or ``"<plugin>:<name>"`` when two plugins provide it.
   Stages and tools look them up through the plugin manager::

       from llmos.plugins import get_manager

       manager = get_manager()
       manager.extensions("optimizers")            # every registered optimizer
       ext = manager.get_extension("optimizers", "adamw")   # or "plugin:adamw"
       cfg = ext.validate_config({"betas": [0.9, 0.95]})
       opt = ext.load_factory()(params, cfg)

   An unknown name raises :class:`llmos.errors.NotFoundError` listing the
   available names; a name two plugins provide raises
   :class:`llmos.errors.ConflictError` naming both. ``llmos components`` lists
   them under their plugin.

3. **Lifecycle hooks**, called by the pipeline runner, the trainer, the
   registry and the server. They are notifications: return values are ignored,
   and an exception inside one plugin's implementation is reported and isolated
   — it never stops the run or other plugins.

4. **The CLI hook**: plugins add click commands.

Rules (pluggy conventions): implementations may accept any subset of a hook's
arguments (new arguments can be added without breaking old plugins);
arguments are never renamed or removed; results never depend on plugin order.

Plugins written for API 1 (``LLMOS_API = 1``) keep loading: their old hook
names are mapped onto these (see :data:`llmos.plugins.API1_HOOK_NAMES`) with a
one-line deprecation warning.
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
# 1. Stage-step providers: one per stage
# ---------------------------------------------------------------------------


@hookspec
def llmos_register_data_steps(register: Register) -> None:
    """Provide **data** stage steps: corpora, tokenizers, preprocessors.

    :param register: call ``register(name, factory, config=..., description=...)``
        once per component.
    :returns: nothing (results are delivered through ``register``).

    Example::

        @hookimpl
        def llmos_register_data_steps(register):
            from llmos_data.config import CorpusConfig

            register("corpus", "llmos_data.corpus:CorpusStep",
                     config=CorpusConfig, description="Text from files and folders")
    """


@hookspec
def llmos_register_model_steps(register: Register) -> None:
    """Provide **model** stage steps: build from an architecture, load, evaluate, register.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_model_steps(register):
            from llmos_models.config import LlamaConfig

            register("llama", "llmos_models.build:LlamaStep", config=LlamaConfig,
                     description="Llama-style decoder-only model from a size preset")
    """


@hookspec
def llmos_register_optimizer_steps(register: Register) -> None:
    """Provide **optimizer** stage steps: training loops, hyper-parameter searches.

    (To add an *optimizer* such as Lion to the standard training loop, implement
    :func:`llmos_register_optimizers` instead.)

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_optimizer_steps(register):
            from llmos_train.config import TrainConfig

            register("train", "llmos_train.step:TrainStep", config=TrainConfig,
                     description="Training loop with warmup, checkpoints and resume")
    """


@hookspec
def llmos_register_compression_steps(register: Register) -> None:
    """Provide **compression** stage steps: quantize, prune, distill.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_compression_steps(register):
            from llmos_compress.config import Int8Config

            register("int8", "llmos_compress.int8:Int8Step", config=Int8Config,
                     description="Dynamic int8 quantization of nn.Linear layers")
    """


@hookspec
def llmos_register_deployment_steps(register: Register) -> None:
    """Provide **deployment** stage steps: exporters, servers, routers.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_deployment_steps(register):
            from llmos_export.config import OnnxConfig

            register("onnx", "llmos_export.onnx_export:OnnxExporter", config=OnnxConfig,
                     description="Export to ONNX and check logits with ONNX Runtime")
    """


@hookspec
def llmos_register_monitoring_steps(register: Register) -> None:
    """Provide **monitoring** stage steps: metric sinks bound to a run, reports, exporters.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_monitoring_steps(register):
            from llmos_jsonl_sink.sink import JsonlConfig

            register("jsonl", "llmos_jsonl_sink.sink:JsonlStep", config=JsonlConfig,
                     description="Append every metric to a JSON Lines file")
    """


# ---------------------------------------------------------------------------
# 2. Extension points: what a standard stage lets you swap inside it
# ---------------------------------------------------------------------------


@hookspec
def llmos_register_optimizers(register: Register) -> None:
    """Provide **optimizers** (``torch.optim.Optimizer`` factories) for the training stage.

    Selected by the training stage's ``optimizer`` setting (e.g.
    ``--set stages.train.config.optimizer=lion``). The factory is called as
    ``factory(params, config) -> torch.optim.Optimizer``: ``params`` are the
    parameter groups to optimize, each already carrying ``lr`` and
    ``weight_decay`` (matrices decay, biases and norms do not), so pass them
    straight to your optimizer; ``config`` an instance of the registered pydantic
    model, from the stage's ``optimizer_config`` table (hyper-parameters with
    defaults; checked by ``llmos run --check``). It runs in every data-parallel
    worker, which looks it up by name in its own plugin manager, so it must be
    importable by its ``"module:attr"`` string.
    (In API 1 this hook name meant training *steps*: see
    :func:`llmos_register_optimizer_steps`.)

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_optimizers(register):
            from my_lion.config import LionConfig

            register("lion", "my_lion.optim:make_lion", config=LionConfig,
                     description="Lion (sign momentum), Chen et al. 2023")
    """


@hookspec
def llmos_register_lr_schedules(register: Register) -> None:
    """Provide **learning-rate schedules** for the training stage.

    Selected by the training stage's ``schedule`` setting, configured by its
    ``schedule_config`` table. The factory is called as
    ``factory(config, *, warmup, total) -> Callable[[int], float]`` (plus
    ``model_width=``, the model's hidden size, if it accepts that keyword): a
    multiplier of the base learning rate for each optimizer step (0-based:
    ``f(0)`` is the first update's). The config model is validated with the
    context ``{"warmup": ..., "total": ...}`` (pydantic's ``info.context``), so a
    validator can refuse impossible combinations at ``llmos run --check``.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_lr_schedules(register):
            register("inverse-sqrt", "my_schedules:inverse_sqrt",
                     description="Warmup, then lr / sqrt(step)")
    """


@hookspec
def llmos_register_data_readers(register: Register) -> None:
    """Provide **data readers**: file formats the ``data.corpus`` stage can read.

    Selected by the corpus stage's ``format`` setting, or with ``format = "auto"``
    by file suffix (a reader named ``x`` reads ``.x`` files). The factory is
    called as ``factory(path, config) -> Iterator[str]``: the documents (texts)
    of one file, read lazily. ``config`` comes from the stage's ``reader_config``
    table; fields named like a corpus setting (``text_field``,
    ``split_paragraphs``) default to that setting's value.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_data_readers(register):
            from my_reader.config import TsvConfig

            register("tsv", "my_reader:read_tsv", config=TsvConfig,
                     description="One document per row of a tab-separated column")
    """


@hookspec
def llmos_register_tokenizer_trainers(register: Register) -> None:
    """Provide **tokenizer trainers** for the ``data.corpus`` stage.

    Selected by the corpus stage's ``tokenizer_trainer`` setting, configured by
    ``tokenizer_trainer_config``. The factory is called as
    ``factory(texts, config) -> transformers.PreTrainedTokenizerFast``:
    ``texts`` is an iterator of documents. Fields of ``config`` named like a
    corpus setting (``vocab_size``, ``min_frequency``, ``bos_token``,
    ``eos_token``, ``pad_token``) default to that setting's value; the corpus
    then makes the tokenizer start every text with ``bos_token`` (``add_bos``).

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_tokenizer_trainers(register):
            from my_tok.config import UnigramConfig

            register("unigram", "my_tok:train_unigram", config=UnigramConfig,
                     description="SentencePiece-style unigram tokenizer")
    """


@hookspec
def llmos_register_architectures(register: Register) -> None:
    """Provide **model architectures**, each with named size **presets**.

    Selected by ``model.build``'s ``architecture`` and ``preset`` settings
    (``[stages.config] architecture = "llama", preset = "tiny", settings = {...}``).
    The callback takes one more keyword, ``presets={"tiny": {...}, ...}``: each
    preset is a mapping of config fields, overridden by ``settings`` and validated
    by ``config``. The factory is called as ``factory(config, *, vocab_size,
    max_positions, special) -> transformers.PretrainedConfig`` (``special``: the
    dataset's ``{"bos", "eos", "pad"}`` token ids); ``model.build`` initialises a
    causal LM from it with the run's seed. llmos-models registers ``llama`` and ``gpt2``.

    :param register: see :func:`llmos_register_data_steps`; also accepts ``presets=``.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_architectures(register):
            from llmos_models.config import PRESETS, LlamaConfig

            register("llama", "llmos_models.build:llama_hf_config", config=LlamaConfig,
                     presets=PRESETS["llama"], description="Llama-style decoder")
    """


@hookspec
def llmos_register_model_loaders(register: Register) -> None:
    """Provide **model loaders**: how a saved model directory is read back.

    A model directory's ``llmos.json`` names its loader by the registered
    *name* (``"loader": "int8"``); the name is resolved only through installed
    plugins, never imported from the file. The factory is called as
    ``factory(path) -> torch.nn.Module`` (a causal LM; the tokenizer is read
    by llmos-models).

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_model_loaders(register):
            register("int8", "llmos_compress.int8:load_int8",
                     description="Models quantized by compression.int8")
    """


@hookspec
def llmos_register_eval_tasks(register: Register) -> None:
    """Provide **evaluation tasks** (a benchmark: data plus a scoring procedure).

    Selected by the evaluation stage's ``tasks`` setting. The factory is called
    as ``factory(config)`` and returns the task object the evaluation stage runs.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_eval_tasks(register):
            from my_evals.config import ClozeConfig

            register("cloze", "my_evals:ClozeTask", config=ClozeConfig,
                     description="Fill-in-the-blank accuracy on a local JSONL file")
    """


@hookspec
def llmos_register_eval_metrics(register: Register) -> None:
    """Provide **evaluation metrics** (score predictions against references).

    Selected by an evaluation task's ``metrics`` setting. The factory is called
    as ``factory(config)`` and returns the metric the evaluation stage applies.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_eval_metrics(register):
            register("exact-match", "my_evals:exact_match",
                     description="1.0 when prediction equals reference after stripping")
    """


@hookspec
def llmos_register_quantizers(register: Register) -> None:
    """Provide **quantization methods** for the compression stage.

    Selected by ``compression.quantize``'s ``method`` setting (its ``settings``
    are validated by ``config``). The factory is called as
    ``factory(model, config) -> torch.nn.Module`` (the quantized model). A quantized model that cannot be saved by ``save_pretrained``
    should also come with a loader (:func:`llmos_register_model_loaders`).

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_quantizers(register):
            from llmos_compress.config import Int8Config

            register("int8", "llmos_compress.int8:quantize", config=Int8Config,
                     description="Dynamic int8 quantization of nn.Linear layers")
    """


@hookspec
def llmos_register_export_formats(register: Register) -> None:
    """Provide **export formats** for the deployment stage and ``llmos model export``.

    Selected by ``deployment.export``'s ``format`` setting (its ``settings`` are
    validated by ``config``). The factory is called as
    ``factory(model, tokenizer, out_dir, config) -> list[pathlib.Path]`` (the
    files written).

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_export_formats(register):
            from llmos_export.config import SafetensorsConfig

            register("safetensors", "llmos_export.formats:safetensors_format",
                     config=SafetensorsConfig, description="Portable Hugging Face directory")
    """


@hookspec
def llmos_register_serving_engines(register: Register) -> None:
    """Provide **serving engines**: what ``llmos serve`` generates with.

    Selected by ``llmos serve --engine NAME`` (or a version's tag ``engine``). The
    factory is called as ``factory(loaded, max_batch_size=, max_queue=, label=,
    observer=)`` with the loaded version (``llmos_serve.loader.LoadedModel``: ``model``,
    ``tokenizer``, ``path``, ``ref``) and returns an engine with the interface of
    ``llmos_serve.engine.Engine`` (subclassing it keeps the batching and sampling). An
    optional ``factory.unsupported(loaded) -> str | None`` says why it cannot serve a
    version. llmos-serve registers ``eager`` (PyTorch) and ``ort`` (ONNX Runtime).

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_serving_engines(register):
            from my_engine.config import EngineConfig

            register("paged", "my_engine:PagedEngine", config=EngineConfig,
                     description="Paged KV cache, continuous batching")
    """


# ---------------------------------------------------------------------------
# 3. Lifecycle hooks (notifications; exceptions are isolated per plugin)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# 4. CLI
# ---------------------------------------------------------------------------


@hookspec
def llmos_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``llmos`` command line.

    Keep the command's module light: import heavy libraries inside the command
    function, so ``llmos --help`` stays fast.

    :param cli: the root ``llmos`` click group; call ``cli.add_command(cmd)``.
        ``cli.core_group("plugin")`` (or ``"model"``, ``"runs"``, ``"db"``) returns a
        core group to add sub-commands to; never import ``llmos.cli`` modules. A
        plugin cannot replace an existing command.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_commands(cli):
            @cli.command()
            def hello():
                "Say hello."
                click.echo("hello")

            cli.core_group("plugin").add_command(hello, "hello")  # llmos plugin hello
    """


@hookspec
def llmos_after_plugin_list(plugins: list[tuple[str, str | None]]) -> list[str]:
    """Called by ``llmos plugin list`` after it printed the table: warnings to show.

    :param plugins: ``[(distribution, version)]`` of the plugins listed.
    :returns: lines shown as ``Warning: <line>`` on stderr (e.g. a yanked release).

    Example::

        @hookimpl
        def llmos_after_plugin_list(plugins):
            return [f"{d} {v} is yanked" for d, v in plugins if is_yanked(d, v)]
    """


@hookspec
def llmos_after_plugin_info(info: dict[str, Any]) -> None:
    """Called by ``llmos plugin info NAME`` before it prints: add fields to ``info``.

    :param info: the plugin's description (``name``, ``dist``, ``version``, ``hooks``,
        ``components``...); add keys to it (``--json`` shows them all).
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_after_plugin_info(info):
            info["index"] = lookup(info["dist"])
    """
