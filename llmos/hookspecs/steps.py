"""Hook specs, group 1: stage-step providers, one per stage.

Part of the llmos plugin contract; read :mod:`llmos.hookspecs` first.
"""

from __future__ import annotations

from collections.abc import Callable

from llmos import hookspec

#: The register callback passed to every provider hook.
Register = Callable[..., None]


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
