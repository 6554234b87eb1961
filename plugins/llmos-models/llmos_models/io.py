"""Saving and loading models: Hugging Face layout, safetensors only, plus ``llmos.json``.

A model directory holds ``config.json``, ``generation_config.json``,
``model.safetensors``, the tokenizer files and ``llmos.json``::

    {
      "format": 1,
      "architecture": "LlamaForCausalLM",
      "params": 1094272,
      "chat_template": null,
      "generation": {"max_new_tokens": 64, "temperature": 0.0, ...},
      "loader": "llmos_compress.int8:load"        # only for models with llmos_saver
    }

A model carrying ``llmos_saver = "module:function"`` (e.g. an int8-quantized one) is
written by ``function(model, path)`` instead of ``save_pretrained``, and read back by
the function named in ``"loader"`` (``loader(path) -> model``): the model's
``llmos_loader`` attribute if set, else ``load`` in the saver's module. So compressed models
round-trip through the registry without this module knowing the method. Nothing is
ever unpickled: ``.bin``/``.pt`` weights are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmos.errors import NotFoundError, ValidationError

LLMOS_JSON = "llmos.json"
FORMAT = 1
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _saver_of(model: Any) -> str | None:
    saver = getattr(model, "llmos_saver", None)
    if saver is None:
        return None
    if not isinstance(saver, str) or ":" not in saver:
        raise ValidationError(f"model.llmos_saver must be a 'module:function' string, got {saver!r}")
    return saver


def _loader_for(model: Any, saver: str) -> str:
    """The loader recorded for a model written by ``saver``: the model's ``llmos_loader``
    attribute when it has one, else the function ``load`` of the saver's module."""
    loader = getattr(model, "llmos_loader", None)
    if loader is not None:
        if not isinstance(loader, str) or ":" not in loader:
            raise ValidationError(f"model.llmos_loader must be a 'module:function' string, got {loader!r}")
        return loader
    return f"{saver.partition(':')[0]}:load"


def _quiet_transformers() -> None:
    """No tqdm bars from transformers while saving/loading (they break live displays)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def save_model(model: Any, tokenizer: Any, path: Path | str, *, generation: dict[str, Any] | None = None,
               chat_template: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (+ ``tokenizer``) to directory ``path`` in Hugging Face layout.

    The directory is written under a temporary name next to ``path`` and renamed into
    place when complete, so a failure leaves no half-written model. An existing
    ``path`` is replaced.

    :param generation: default generation settings recorded in ``llmos.json``.
    :param chat_template: a Jinja chat template recorded in ``llmos.json`` (and on the tokenizer).
    :param extra: more keys for ``llmos.json``.
    :returns: ``path``.
    """
    from llmos.components import import_object

    _quiet_transformers()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        meta: dict[str, Any] = {"format": FORMAT}
        saver = _saver_of(model)
        if saver is not None:
            import_object(saver)(model, tmp)
            meta["loader"] = _loader_for(model, saver)
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
            if chat_template is not None:
                tokenizer.chat_template = chat_template
            tokenizer.save_pretrained(str(tmp))
        meta["chat_template"] = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
        if generation is None:
            from llmos_models.generate import GenerationSettings

            generation = GenerationSettings().model_dump(mode="json")
        meta["generation"] = generation
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


def read_meta(path: Path | str) -> dict[str, Any]:
    """The ``llmos.json`` of a model directory (``{}`` for a plain HF directory)."""
    f = Path(path) / LLMOS_JSON
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except ValueError as exc:
        raise ValidationError(f"{f} is not valid JSON ({exc}); re-save the model") from None


def load_model(path: Path | str, *, device: str | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a directory written by :func:`save_model` (or any
    Hugging Face causal-LM directory with safetensors weights).

    :raises NotFoundError: ``path`` is not a directory or has no weights.
    :raises ValidationError: the weights are pickles (``.bin``/``.pt``), which are refused.
    """
    from llmos.components import import_object

    path = Path(path)
    if not path.is_dir():
        raise NotFoundError(f"model directory {str(path)!r} does not exist")
    meta = read_meta(path)
    _check_no_pickles(path)
    if meta.get("loader"):
        try:
            loader = import_object(meta["loader"])
        except Exception as exc:  # noqa: BLE001
            raise ValidationError(
                f"{path} needs the loader {meta['loader']!r}, which does not import ({exc}); "
                f"install the plugin that wrote it"
            ) from exc
        model = loader(path)
    else:
        if not any(path.glob("*.safetensors")):
            raise NotFoundError(f"{path} has no .safetensors weights; is it a model directory?")
        if not (path / "config.json").is_file():
            raise NotFoundError(f"{path} has no config.json; is it a Hugging Face model directory?")
        from transformers import AutoModelForCausalLM

        _quiet_transformers()
        model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True)
    if device is not None:
        model.to(device)
    model.eval()
    tokenizer = None
    if (path / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
        if meta.get("chat_template") and not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = meta["chat_template"]
    return model, tokenizer


def resolve_model_path(ref: str) -> tuple[Path, str | None]:
    """A local directory, or a registry reference (``name``, ``name:3``, ``name@alias``)
    checked out from the registry. Returns ``(directory, "name:N" or None)``."""
    p = Path(ref).expanduser()
    if p.is_dir():
        return p, None
    if os.sep in ref or ref.startswith("."):
        raise NotFoundError(f"model directory {ref!r} does not exist")
    from llmos.registry import open_registry

    reg = open_registry()
    version = reg.resolve(ref)
    ref_str = getattr(version, "ref", None) or f"{version.model}:{version.number}"
    return Path(reg.checkout(ref_str)), ref_str


def load_ref(ref: str) -> tuple[Any, Any, str | None]:
    """``load_model`` on a directory or a registry reference: ``(model, tokenizer, "name:N" or None)``."""
    path, resolved = resolve_model_path(ref)
    model, tokenizer = load_model(path)
    return model, tokenizer, resolved
