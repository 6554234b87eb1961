"""Saving and loading models: Hugging Face layout, safetensors only, plus ``llmos.json``.

A model directory holds ``config.json``, ``generation_config.json``,
``model.safetensors``, the tokenizer files and ``llmos.json``::

    {
      "format": 1,
      "architecture": "LlamaForCausalLM",
      "params": 1094272,
      "chat_template": null,
      "generation": {"max_new_tokens": 64, "temperature": 0.0, ...},
      "loader": "int8"        # only for models not written by save_pretrained
    }

**A model directory is data: it never names code.** ``"loader"`` is the *name* of a
model loader registered by an installed plugin through the
``llmos_register_model_loaders`` hook (``hf`` here, ``int8`` in llmos-compress, ``onnx``
in llmos-export); :func:`load_model` resolves it through the plugin manager only and
never imports anything the file names. A legacy ``llmos.json`` holding a
``"module:function"`` string is accepted only when that string is exactly the factory
of a loader an installed plugin registers; anything else is a one-line error listing
the installed loaders. Without ``"loader"`` the directory is read as a Hugging Face
causal LM (the ``hf`` loader).

A model object carrying ``llmos_saver`` (a callable, or ``"module:function"`` — set by
the plugin code that built it, never read from a file) and ``llmos_loader`` (a
registered loader name), e.g. an int8-quantized one, is written by
``llmos_saver(model, path)`` instead of ``save_pretrained`` and read back by that
loader. So compressed models round-trip through the registry without this module
knowing the method. Nothing is ever unpickled: ``.bin``/``.pt`` weights are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmos.sdk import PICKLE_SUFFIXES as _PICKLE_SUFFIXES
from llmos.sdk import NotFoundError, ValidationError

from llmos_models.meta import LLMOS_JSON, read_meta  # noqa: F401 - read_meta is part of this module's API

FORMAT = 1


HF_LOADER = "hf"


def _saver_of(model: Any) -> Any:
    """The model's ``llmos_saver`` (set by plugin code on the object, never read from a file)."""
    saver = getattr(model, "llmos_saver", None)
    if saver is None or callable(saver):
        return saver
    if not isinstance(saver, str) or ":" not in saver:
        raise ValidationError(f"model.llmos_saver must be a callable or a 'module:function' string, got {saver!r}")
    from llmos.sdk import import_object

    return import_object(saver)


def _loader_name_for(model: Any, manager: Any = None) -> str:
    """The registered loader name a model with a custom saver records in ``llmos.json``."""
    name = getattr(model, "llmos_loader", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(
            f"a model with llmos_saver needs llmos_loader = the name of a registered model loader, got {name!r}: "
            f"installed loaders: {', '.join(loader_names(manager)) or 'none'}"
        )
    resolve_loader(name, manager=manager, where="model.llmos_loader")  # must load back
    return name


def loader_names(manager: Any = None) -> list[str]:
    """Names of the model loaders installed plugins register (``plugin:name`` when two share one)."""
    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    exts = manager.extensions("model_loaders")
    names = [e.name for e in exts]
    return sorted(e.name if names.count(e.name) == 1 else e.qualified_ref for e in exts)


def resolve_loader(value: Any, *, manager: Any = None, where: str = "llmos.json") -> Any:
    """The loader function a model directory's ``"loader"`` names, resolved through the
    plugin manager only: a registered name (or ``plugin:name``), or — for directories
    written before loaders had names — a ``"module:function"`` string equal to a
    registered loader's factory string. Nothing named by the file is imported.

    :raises ValidationError: anything else (one line, listing the installed loaders).
    """
    from llmos.sdk import ConflictError

    if manager is None:
        from llmos.sdk import get_manager

        manager = get_manager()
    exts = manager.extensions("model_loaders")
    if isinstance(value, str):
        legacy = [e for e in exts if isinstance(e.factory, str) and e.factory == value]
        if len(legacy) == 1:
            return legacy[0].load_factory()
        try:
            return manager.get_extension("model_loaders", value).load_factory()
        except (NotFoundError, ConflictError):
            pass
    raise ValidationError(
        f"{where} names the loader {value!r}, which is not a model loader registered by an installed plugin "
        f"(installed loaders: {', '.join(loader_names(manager)) or 'none'}); a model directory cannot name code: "
        f"install the plugin that wrote the model, or re-save it"
    )


def _quiet_transformers() -> None:
    """No tqdm bars from transformers while saving/loading (they break live displays)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def save_model(model: Any, tokenizer: Any, path: Path | str, *, generation: dict[str, Any] | None = None,
               chat_template: str | None = None, extra: dict[str, Any] | None = None,
               manager: Any = None) -> Path:
    """Write ``model`` (+ ``tokenizer``) to directory ``path`` in Hugging Face layout.

    The directory is written under a temporary name next to ``path`` and renamed into
    place when complete, so a failure leaves no half-written model. An existing
    ``path`` is replaced.

    :param generation: default generation settings recorded in ``llmos.json``.
    :param chat_template: a Jinja chat template recorded in ``llmos.json`` (and on the tokenizer).
    :param extra: more keys for ``llmos.json`` (never ``"loader"``: that is the
        registered name of the model's ``llmos_loader``).
    :param manager: the plugin manager resolving loader names (default: the process's).
    :returns: ``path``.
    """
    _quiet_transformers()
    if extra and "loader" in extra:
        raise ValidationError("save_model(extra=...) cannot set 'loader': set model.llmos_loader to a registered name")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        meta: dict[str, Any] = {"format": FORMAT}
        saver = _saver_of(model)
        from llmos_models.adapter import is_adapter_model, save_adapter

        if is_adapter_model(model):  # only the adapter's tensors; the base stays where it is
            meta.update(save_adapter(model, tmp))
        elif saver is not None:
            meta["loader"] = _loader_name_for(model, manager)
            saver(model, tmp)
        else:
            model.save_pretrained(str(tmp), safe_serialization=True)
        config = getattr(model, "config", None)
        archs = getattr(config, "architectures", None) or [type(model).__name__]
        meta["architecture"] = archs[0]
        try:
            from llmos_models.build import count_parameters

            meta["params"] = count_parameters(model)
        except Exception:  # noqa: BLE001 - a model without parameters()
            pass
        if tokenizer is not None:
            from llmos_models.chat import with_chat_template

            with_chat_template(tokenizer, chat_template)  # the version carries its template (the default if none)
            tokenizer.save_pretrained(str(tmp), save_jinja_files=False)
        meta["chat_template"] = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
        if generation is not None:  # only what was chosen: servers apply their own defaults otherwise
            meta["generation"] = generation
        if getattr(model, "llmos_train_context", None):  # the longest block it was trained on
            meta["train_context"] = int(model.llmos_train_context)
        meta.update(extra or {})
        _check_no_pickles(tmp)
        (tmp / LLMOS_JSON).write_text(json.dumps(meta, indent=2, default=str))
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_no_pickles(path: Path) -> None:
    bad = sorted(f.name for f in path.iterdir() if f.suffix.lower() in _PICKLE_SUFFIXES)
    if bad:
        raise ValidationError(
            f"{path} holds pickled weights ({', '.join(bad)}); llmos loads only safetensors: "
            f"re-save the model with save_pretrained(safe_serialization=True)"
        )


def load_hf(path: Path | str) -> Any:
    """The ``hf`` model loader: a Hugging Face causal LM from safetensors weights
    (built-in architectures only: ``trust_remote_code`` is never set)."""
    path = Path(path)
    if not any(path.glob("*.safetensors")):
        raise NotFoundError(f"{path} has no .safetensors weights; is it a model directory?")
    if not (path / "config.json").is_file():
        raise NotFoundError(f"{path} has no config.json; is it a Hugging Face model directory?")
    refuse_remote_code(path)
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    return AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False)


def refuse_remote_code(path: Path | str) -> None:
    """Refuse a directory whose ``config.json`` / ``tokenizer_config.json`` maps classes to
    Python files (``auto_map``, Hugging Face's remote code): llmos never runs them."""
    for name in ("config.json", "tokenizer_config.json"):
        f = Path(path) / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_text())
        except ValueError as exc:
            raise ValidationError(f"{f} is not valid JSON ({exc}); re-save the model") from None
        if isinstance(data, dict) and data.get("auto_map"):
            raise ValidationError(
                f"{f} names custom code (auto_map: {', '.join(map(str, data['auto_map']))}), which llmos never runs: "
                f"a model directory is data; use a built-in architecture or a plugin's model loader"
            )


def load_model(path: Path | str, *, device: str | None = None, manager: Any = None,
               ref: str | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a directory written by :func:`save_model` (or any
    Hugging Face causal-LM directory with safetensors weights).

    The loader is the one ``llmos.json`` names, resolved through the plugin manager
    (:func:`resolve_loader`), or the ``hf`` loader when it names none. An adapter
    directory (``llmos_models.adapter``) goes through the ``adapter`` loader, which
    loads it on its base: the registry parent of ``ref`` (the directory's registry
    reference, when it is a checkout).

    :raises NotFoundError: ``path`` is not a directory or has no weights.
    :raises ValidationError: the weights are pickles (``.bin``/``.pt``), which are refused,
        or ``llmos.json`` names a loader no installed plugin registers.
    """
    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"model directory {str(path)!r} does not exist")
    meta = read_meta(path)
    _check_no_pickles(path)
    refuse_remote_code(path)  # whatever the loader: transformers' auto_map is code
    from llmos_models.adapter import is_adapter_dir

    if meta.get("kind") == "adapter" or is_adapter_dir(path):
        # the registered "adapter" loader (load_adapter); with ``ref`` it finds the base through the registry lineage
        model = resolve_loader("adapter", manager=manager, where=f"{path / LLMOS_JSON}")(path, ref=ref)
    elif "loader" in meta and meta["loader"] not in (None, HF_LOADER):
        loader = resolve_loader(meta["loader"], manager=manager, where=f"{path / LLMOS_JSON}")
        model = loader(path)
    else:
        model = load_hf(path)
    if device is not None:
        model.to(device)
    model.eval()
    if isinstance(meta.get("train_context"), int):
        model.llmos_train_context = meta["train_context"]
    return model, load_tokenizer(path, meta)


def load_tokenizer(path: Path | str, meta: dict[str, Any] | None = None) -> Any:
    """The tokenizer of a model directory (``tokenizer.json``; ``None`` without one), with
    ``llmos.json``'s chat template when the tokenizer files carry none."""
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        return None
    from transformers import PreTrainedTokenizerFast

    meta = read_meta(path) if meta is None else meta
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    if meta.get("chat_template") and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = meta["chat_template"]
    return tokenizer


def load_adapter(path: Path | str, ref: str | None = None, *, manager: Any = None) -> Any:
    """The ``adapter`` model loader, ``loader(path, ref)``: the adapter at ``path`` applied
    to its base, in eval mode. The base is the registry parent of ``ref`` (the adapter's
    own version), else ``llmos.json``'s ``base`` reference; it is loaded like any version
    (:func:`load_ref`), and must not itself be an adapter."""
    from llmos_models.adapter import apply_adapter, base_ref_of, is_adapter_model, read_adapter_config

    path = Path(path)
    read_adapter_config(path)
    base = base_ref_of(path, ref)
    base_model, _, _ = load_ref(base, manager=manager)
    if is_adapter_model(base_model):
        raise ValidationError(f"the base {base} of {ref or path} is itself an adapter: merge it first "
                              f"(llmos merge {base})")
    model = apply_adapter(base_model, path)
    model.llmos_base = base
    return model


def resolve_model_path(ref: str) -> tuple[Path, str | None]:
    """A local directory, or a registry reference (``name``, ``name:3``, ``name@alias``)
    checked out from the registry. Returns ``(directory, "name:N" or None)``."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return p, None
    if os.sep in ref or ref.startswith("."):
        raise NotFoundError(f"model directory {ref!r} does not exist")
    from llmos.sdk import open_registry

    reg = open_registry()
    version = reg.resolve(ref)
    ref_str = getattr(version, "ref", None) or f"{version.model}:{version.number}"
    return Path(reg.checkout(ref_str)), ref_str


def load_ref(ref: str, *, manager: Any = None) -> tuple[Any, Any, str | None]:
    """``load_model`` on a directory or a registry reference: ``(model, tokenizer, "name:N" or None)``."""
    path, resolved = resolve_model_path(ref)
    model, tokenizer = load_model(path, manager=manager, ref=resolved)
    return model, tokenizer, resolved
