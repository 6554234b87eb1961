"""Find and load the model versions a server serves.

A *model spec* is what the user typed after ``llmos serve``:

- a registry reference — ``name`` (latest ready version), ``name:N`` (one
  version) or ``name@alias`` (whatever the alias points at, followed while the
  server runs);
- or a local directory in Hugging Face layout (``config.json``,
  ``model.safetensors``, tokenizer files, optional ``llmos.json``).

Models load through ``llmos_models.io.load_model`` when the model plugin is
installed (so int8 and other compressed versions load with their own loader),
otherwise through ``transformers.AutoModelForCausalLM``, and are placed on ``device``
with ``precision`` (``llmos_models.placement.place``: ``auto`` is CUDA, then MPS, then
the CPU, in bf16 on CUDA GPUs that support it; ONNX and int8 versions stay on the CPU).
An adapter version loaded with a :class:`~llmos_serve.bases.SharedBases` attaches to the
base it shares with the other adapters of that base.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

log = logging.getLogger("llmos.serve")

_REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:(?P<sep>[:@])(?P<tail>[A-Za-z0-9][A-Za-z0-9._-]*))?$")

@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec. ``follows`` is true when the version it names can change
    (an alias, or a bare name meaning "latest")."""

    text: str
    name: str
    path: Path | None = None
    version: int | None = None
    alias: str | None = None

    @property
    def follows(self) -> bool:
        return self.path is None and self.version is None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        text = (text or "").strip()
        p = Path(text).expanduser()
        if text and (p.is_dir() or text.startswith((".", "/", "~"))):
            if not (p / "config.json").is_file():
                raise NotFoundError(
                    f"{text!r} is not a model directory (no config.json): pass a registry reference "
                    f"like 'quickstart@production' or a directory written by save_model"
                )
            return cls(text=text, name=p.resolve().name, path=p.resolve())
        m = _REF_RE.match(text)
        if not m:
            raise ValidationError(
                f"invalid model reference {text!r}: write 'name', 'name:VERSION', 'name@ALIAS' or a directory path"
            )
        name, sep, tail = m.group("name"), m.group("sep"), m.group("tail")
        if sep == ":":
            if not tail.isdigit():
                raise ValidationError(f"invalid version in {text!r}: write 'name:N' with N a number")
            return cls(text=text, name=name, version=int(tail))
        return cls(text=text, name=name, alias=tail if sep == "@" else None)


@dataclass
class LoadedModel:
    """A model version in memory, ready for an engine."""

    name: str
    version: str  # "3", or "local" for a directory
    path: Path
    model: Any
    tokenizer: Any
    context_length: int
    chat_template: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    #: the ONNX Runtime model the ``auto`` engine choice checked against ``model`` (engines.choose)
    onnx_model: Any = None
    #: where it runs: the torch device ("cpu", "cuda:0") and precision ("fp32", "bf16", "fp16")
    device: str = "cpu"
    precision: str = "fp32"
    #: for an adapter version on a shared base: the base's "name:N" (``model`` is its view)
    base: str | None = None
    #: called once when the version is unloaded (detaches a shared adapter)
    on_close: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Free what this version holds beyond its engine (a shared base's adapter)."""
        fn, self.on_close = self.on_close, None
        if fn is not None:
            fn()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def chat_prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt ids for ``messages``: the version's chat template (``llmos.json``, else
        its tokenizer's, else :data:`llmos_models.chat.DEFAULT_CHAT_TEMPLATE`), encoded
        exactly as ``llmos_models.chat.encode_chat`` encodes training conversations."""
        try:
            from llmos_models.chat import encode_prompt
        except ImportError as exc:  # pragma: no cover - llmos-models ships with the standard plugins
            raise NotFoundError("chat needs the llmos-models plugin (its chat templates): pip install llmos-models") from exc
        return encode_prompt(self.tokenizer, messages, self.chat_template)


def open_registry() -> Any:
    """The llmos registry (``$LLMOS_DATABASE_URL`` or SQLite in ``$LLMOS_HOME``)."""
    try:
        from llmos.sdk import open_registry as _open
    except ImportError as exc:  # pragma: no cover - the registry ships with the core
        raise NotFoundError("this llmos has no model registry: serve a model directory instead") from exc
    return _open()


def resolve(spec: ModelSpec, registry: Any = None) -> tuple[str, str, Any]:
    """``(name, version, version_info_or_None)`` that ``spec`` points at now."""
    if spec.path is not None:
        return spec.name, "local", None
    reg = registry if registry is not None else open_registry()
    info = reg.resolve(spec.text)
    return str(info.model), str(info.number), info


def load(spec: ModelSpec, version: str | None = None, registry: Any = None, *, device: str = "auto",
         precision: str = "auto", bases: Any = None) -> LoadedModel:
    """Load the version ``spec`` points at (or ``name:version`` when given) on ``device``
    with ``precision``; an adapter version attaches to its base in ``bases`` (a
    :class:`~llmos_serve.bases.SharedBases`) when given."""
    if spec.path is not None:
        return load_directory(spec.path, name=spec.name, version="local", device=device, precision=precision,
                              bases=bases)
    reg = registry if registry is not None else open_registry()
    if version is None:
        _, version, _ = resolve(spec, reg)
    path = Path(reg.checkout(f"{spec.name}:{version}"))
    return load_directory(path, name=spec.name, version=str(version), ref=f"{spec.name}:{version}", device=device,
                          precision=precision, bases=bases, registry=reg)


def load_directory(path: Path, *, name: str, version: str, ref: str | None = None, device: str = "auto",
                   precision: str = "auto", bases: Any = None, registry: Any = None) -> LoadedModel:
    """Load a Hugging Face-layout directory (with its ``llmos.json`` if any) on ``device``
    with ``precision``; ``ref`` is its registry version (an adapter version loads on its
    registry parent, shared through ``bases`` when given)."""
    path = Path(path)
    try:
        from llmos_models.adapter import is_adapter_dir
        from llmos_models.io import load_model, load_tokenizer
    except ImportError:
        load_model = None
    base = on_close = None
    if load_model is not None and bases is not None and is_adapter_dir(path):
        label = ref or str(path)
        model, base, where_device, where_precision = bases.attach(path, label, ref=ref, registry=registry,
                                                                 device=device, precision=precision)
        on_close = lambda: bases.detach(model)  # noqa: E731
        tokenizer = load_tokenizer(path)
    elif load_model is not None:
        from llmos_models.placement import place

        model, tokenizer = load_model(path, ref=ref)
        where_device, where_precision = place(model, device, precision, what=ref or str(path))
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llmos.sdk import autocast_dtype, place_for_inference, precision_name

        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        where_device = place_for_inference(model, device, precision)
        where_precision = precision_name(autocast_dtype(where_device, precision))
    if tokenizer is None:
        if on_close is not None:
            on_close()
        raise NotFoundError(f"{path} has no tokenizer (tokenizer.json): a served model needs one; re-save it with its tokenizer")
    model.eval()
    meta: dict[str, Any] = {}
    meta_file = path / "llmos.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            log.warning("%s is not valid JSON; ignoring it", meta_file)
    cfg = getattr(model, "config", None)
    ctx = (
        meta.get("context_length")
        or getattr(cfg, "max_position_embeddings", None)
        or getattr(cfg, "n_positions", None)
        or getattr(tokenizer, "model_max_length", None)
        or 2048
    )
    generation = meta.get("generation") or meta.get("generation_defaults") or {}
    return LoadedModel(
        name=name,
        version=version,
        path=path,
        model=model,
        tokenizer=tokenizer,
        context_length=int(ctx),
        chat_template=meta.get("chat_template"),
        generation=dict(generation) if isinstance(generation, dict) else {},
        device=str(where_device),
        precision=where_precision,
        base=base,
        on_close=on_close,
    )
