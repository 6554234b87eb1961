"""The llmos plugin contract: every hook a plugin may implement (plugin API 2).

Read top to bottom: this package's modules are the four groups below, in order
(:mod:`~llmos.hookspecs.steps`, :mod:`~llmos.hookspecs.extensions`,
:mod:`~llmos.hookspecs.lifecycle`, :mod:`~llmos.hookspecs.cli`, :mod:`~llmos.hookspecs.services`).
Names follow one grammar: ``llmos_register_<what>`` for providers (the name says what
is registered), ``llmos_before_<x>`` / ``llmos_after_<x>`` / ``llmos_on_<x>_error`` for
lifecycle notifications, ``llmos_open_<service>`` for a service one plugin provides.
Five groups:

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

5. **Services**: what the core asks one plugin for — the registry
   (``llmos_open_registry``; the standard plugin llmos-registry provides it).

Rules (pluggy conventions): implementations may accept any subset of a hook's
arguments (new arguments can be added without breaking old plugins);
arguments are never renamed or removed; results never depend on plugin order.

Plugins written for API 1 (``LLMOS_API = 1``) keep loading: their old hook
names are mapped onto these (see :data:`llmos.plugins.API1_HOOK_NAMES`) with a
one-line deprecation warning.
"""

from __future__ import annotations

from llmos.hookspecs import cli, extensions, lifecycle, services, steps
from llmos.hookspecs.steps import (  # noqa: F401 - the specs, re-exported
    Register,
    llmos_register_data_steps,
    llmos_register_model_steps,
    llmos_register_optimizer_steps,
    llmos_register_compression_steps,
    llmos_register_deployment_steps,
    llmos_register_monitoring_steps,
)
from llmos.hookspecs.extensions import (  # noqa: F401 - the specs, re-exported
    llmos_register_optimizers,
    llmos_register_lr_schedules,
    llmos_register_data_readers,
    llmos_register_tokenizer_trainers,
    llmos_register_architectures,
    llmos_register_model_loaders,
    llmos_register_eval_tasks,
    llmos_register_eval_metrics,
    llmos_register_quantizers,
    llmos_register_export_formats,
    llmos_register_serving_engines,
)
from llmos.hookspecs.lifecycle import (  # noqa: F401 - the specs, re-exported
    llmos_before_run,
    llmos_after_run,
    llmos_before_stage,
    llmos_after_stage,
    llmos_on_stage_error,
    llmos_after_train_step,
    llmos_after_evaluate,
    llmos_after_version_registered,
    llmos_after_alias_moved,
    llmos_after_request,
    llmos_after_metrics,
)
from llmos.hookspecs.cli import (  # noqa: F401 - the specs, re-exported
    llmos_register_commands,
    llmos_after_plugin_list,
    llmos_after_plugin_info,
)
from llmos.hookspecs.services import llmos_open_registry  # noqa: F401 - the spec, re-exported

#: the groups, in reading order (docs/hooks.md follows it)
GROUPS = (steps, extensions, lifecycle, cli, services)
