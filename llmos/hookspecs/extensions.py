"""Hook specs, group 2: extension points, what a standard stage lets a plugin swap inside it.

Part of the llmos plugin contract; read :mod:`llmos.hookspecs` first.
"""

from __future__ import annotations

from llmos import hookspec
from llmos.hookspecs.steps import Register


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

    ``llmos plugin new NAME --kind optimizer`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind schedule`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind reader`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind tokenizer-trainer`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind architecture`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind eval-task`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind eval-metric`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind quantizer`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind export-format`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

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

    ``llmos plugin new NAME --kind engine`` writes a working one, with a test that
    runs the standard tiny pipeline with it selected.

    :param register: see :func:`llmos_register_data_steps`.
    :returns: nothing.

    Example::

        @hookimpl
        def llmos_register_serving_engines(register):
            from my_engine.config import EngineConfig

            register("paged", "my_engine:PagedEngine", config=EngineConfig,
                     description="Paged KV cache, continuous batching")
    """
