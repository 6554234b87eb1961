"""Serving engines: which engine decodes a loaded version, and how it is built.

Two engines ship with llmos-serve (both continuous batching with a KV cache):

- ``eager`` — PyTorch (:class:`~llmos_serve.engine.Engine`): every PyTorch version,
  int8 ones included;
- ``ort`` — ONNX Runtime (:class:`~llmos_serve.ort_engine.OrtEngine`, needs
  llmos-export): ONNX versions, and PyTorch fp32 versions through an ONNX export of
  their weights made once and kept in the engine cache (``$LLMOS_ENGINE_CACHE``, default
  ``$LLMOS_HOME/cache/engines/onnx/<sha256 of the weights>``; the export is checked
  against PyTorch's logits before it is used).

Plugins add engines with the ``llmos_register_serving_engines`` hook (kind
``serving_engines``; llmos-serve registers these two through it). A factory is
``factory(loaded, **engine_options) -> engine``: ``loaded`` is a
:class:`~llmos_serve.loader.LoadedModel`, the options are ``max_batch_size``,
``max_queue``, ``label`` and ``observer``, and the engine has the interface of
:class:`~llmos_serve.engine.Engine` (``start``, ``stop``, ``submit``, ``stats``,
``num_running``, ``num_waiting``, ``max_batch_size``, ``max_queue``). A factory may have
``factory.unsupported(loaded) -> str | None`` (why it cannot serve that version).

Which engine: ``--engine`` (``ServeConfig.engine``) when not ``auto``; else the
version's registry tag ``engine`` (``llmos model tag NAME:N engine=eager``); else
``auto``, which picks the faster engine wherever its output is the eager engine's:

- ``ort`` for ONNX versions (the only engine that runs them);
- ``ort`` for a PyTorch fp32 version whose ONNX export is in the engine cache **and**
  passes the identity check at load (:func:`same_greedy_output`): the :data:`PROBES`
  prompts, batched together (rows of different lengths), decoded greedily for
  :data:`PROBE_TOKENS` tokens by both engines, must give the same token ids. If they
  differ, the server logs which probe and token differ and serves with ``eager``;
- ``eager`` for the rest (int8 PyTorch versions, and versions not exported yet:
  exporting takes tens of seconds, so ``auto`` never starts one — ``--engine ort`` makes
  the export once per set of weights, after which ``auto`` checks it and uses it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmos.sdk import NotFoundError, ValidationError

log = logging.getLogger("llmos.serve")

KINDS = ("auto", "eager", "ort")


def is_onnx(model: Any) -> bool:
    return hasattr(model, "session") and hasattr(model, "kv_shape")


def is_quantized(model: Any) -> bool:
    if getattr(model, "llmos_compression", None):
        return True
    modules = getattr(model, "modules", None)
    return modules is not None and any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in modules())


# -- the eager engine ---------------------------------------------------------------


def eager_engine(loaded: Any, **options: Any) -> Any:
    """The PyTorch engine."""
    from llmos_serve.engine import Engine

    why = eager_engine.unsupported(loaded)  # type: ignore[attr-defined]
    if why:
        raise ValidationError(why)
    return Engine(loaded.model, loaded.tokenizer, **options)


def _eager_unsupported(loaded: Any) -> str | None:
    if is_onnx(loaded.model):
        return f"{loaded.ref} is an ONNX export: serve it with --engine ort (or auto)"
    return None


eager_engine.unsupported = _eager_unsupported  # type: ignore[attr-defined]


# -- the ONNX Runtime engine --------------------------------------------------------


def cache_root() -> Path:
    env = os.environ.get("LLMOS_ENGINE_CACHE")
    if env:
        return Path(env).expanduser()
    from llmos.sdk import home

    return home() / "cache" / "engines"


def weights_key(path: Path) -> str:
    """sha256 over a version directory's config and weight files (names and bytes)."""
    h = hashlib.sha256(b"llmos-onnx-export-3\0")  # 3: the graph format; older exports are made again
    for f in sorted(Path(path).iterdir()):
        if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name in ("config.json", "llmos.json")):
            h.update(f.name.encode() + b"\0")
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def cached_export(loaded: Any) -> Path | None:
    """The engine cache's ONNX export of ``loaded``'s weights, if made already."""
    d = cache_root() / "onnx" / weights_key(loaded.path)
    return d if (d / "onnx.json").is_file() else None


def ensure_export(loaded: Any) -> Path:
    """The ONNX export of ``loaded``'s weights (made now if the cache has none; written
    beside its final place and renamed in, so concurrent replicas never see half of it)."""
    found = cached_export(loaded)
    if found is not None:
        return found
    try:
        from llmos_export.onnx_export import export_onnx
    except ImportError as exc:
        raise NotFoundError("the ort engine needs the llmos-export plugin: pip install llmos-export") from exc
    dest = cache_root() / "onnx" / weights_key(loaded.path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=dest.parent))
    try:
        log.info("exporting %s to ONNX for the ort engine (once; cached in %s)", loaded.ref, dest)
        export_onnx(loaded.model, loaded.tokenizer, tmp / "graph")
        try:
            os.rename(tmp / "graph", dest)
        except OSError:
            if not (dest / "onnx.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ort_engine(loaded: Any, **options: Any) -> Any:
    """The ONNX Runtime engine (exports a PyTorch version first, see :func:`ensure_export`)."""
    why = ort_engine.unsupported(loaded)  # type: ignore[attr-defined]
    if why:
        raise ValidationError(why)
    from llmos_serve.ort_engine import OrtEngine

    model = loaded.model
    if not is_onnx(model):
        model = getattr(loaded, "onnx_model", None)  # checked by choose() already
        if model is None:
            from llmos_export.runtime import OnnxCausalLM

            model = OnnxCausalLM(ensure_export(loaded), threads=_threads())
        loaded.model = model
    return OrtEngine(model, loaded.tokenizer, **options)


def _threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except Exception:  # noqa: BLE001
        return None


def _ort_unsupported(loaded: Any) -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "the ort engine needs onnxruntime and llmos-export: pip install llmos-export"
    if is_onnx(loaded.model):
        return None
    if getattr(loaded, "device", "cpu") != "cpu":
        return (f"{loaded.ref} is loaded on {loaded.device}, and the ort engine runs ONNX Runtime on the CPU: "
                f"serve it with --engine eager, or on the CPU (--device cpu)")
    if getattr(loaded, "base", None):
        return (f"{loaded.ref} is an adapter served on the shared base {loaded.base}, which the ort engine cannot "
                f"run: serve it with --engine eager, or merge it into a full version (llmos merge {loaded.ref})")
    try:
        import llmos_export  # noqa: F401
    except ImportError:
        return "the ort engine needs the llmos-export plugin to export PyTorch versions: pip install llmos-export"
    if is_quantized(loaded.model):
        return (f"{loaded.ref} is int8-quantized with PyTorch, which ONNX Runtime would not reproduce exactly: "
                f"serve it with --engine eager, or export an ONNX int8 graph (--format onnx --set quantize=true)")
    return None


ort_engine.unsupported = _ort_unsupported  # type: ignore[attr-defined]


# -- choosing -----------------------------------------------------------------------

BUILTIN = {"eager": eager_engine, "ort": ort_engine}


def available() -> dict[str, Any]:
    """Engine name -> factory: those plugins register through
    ``llmos_register_serving_engines`` (llmos-serve registers ``eager`` and ``ort``), and
    the built-in two when the plugin manager has not loaded llmos-serve itself."""
    found = dict(BUILTIN)
    try:
        from llmos.sdk import get_manager

        extensions = get_manager().extensions("serving_engines")
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop serving
        log.warning("cannot list serving engines from plugins (%s); using the built-in ones", exc)
        return found
    for ext in extensions:
        if ext.name in found and ext.plugin == "llmos-serve":
            continue
        try:
            found[ext.name] = ext.load_factory()
        except Exception as exc:  # noqa: BLE001
            log.warning("serving engine %s of plugin %s does not import: %s", ext.name, ext.plugin, exc)
    return found


def check_kind(kind: str) -> None:
    """:raises ValidationError: ``kind`` is neither ``auto`` nor a registered engine."""
    engines = available()
    if kind != "auto" and kind not in engines:
        raise ValidationError(f"unknown serving engine {kind!r}: use --engine {'|'.join(['auto', *sorted(engines)])}")


def choose(kind: str, loaded: Any, tags: dict[str, str] | None = None) -> tuple[str, str]:
    """``(engine name, why)`` for serving ``loaded`` when ``--engine`` is ``kind``.

    :raises ValidationError: an unknown engine, or one that cannot serve this version.
    """
    engines = available()
    requested = kind
    source = "--engine"
    if kind == "auto" and tags and tags.get("engine") and tags["engine"] != "auto":
        requested, source = tags["engine"], f"the tag engine={tags['engine']} of {loaded.ref}"
    if requested != "auto":
        if requested not in engines:
            raise ValidationError(f"unknown serving engine {requested!r} ({source}): use one of "
                                  f"{', '.join(['auto', *sorted(engines)])}")
        why = getattr(engines[requested], "unsupported", lambda _l: None)(loaded)
        if why:
            raise ValidationError(why)
        return requested, source
    if is_onnx(loaded.model):
        return "ort", "an ONNX version"
    if getattr(loaded, "device", "cpu") != "cpu":
        return "eager", f"auto: the model is on {loaded.device} (ONNX Runtime runs on the CPU here)"
    if "ort" in engines and not _ort_unsupported(loaded) and cached_export(loaded) is not None:
        from llmos_export.runtime import OnnxCausalLM

        onnx = OnnxCausalLM(cached_export(loaded), threads=_threads())
        differs = same_greedy_output(loaded, onnx)
        if differs is None:
            loaded.onnx_model = onnx  # ort_engine serves this one
            return "ort", (f"auto: its ONNX export in the engine cache gives the eager engine's greedy output "
                           f"on {len(PROBES)} probe prompts")
        log.warning("%s: the ort engine's greedy output differs from eager's (%s): serving with eager", loaded.ref,
                    differs)
        return "eager", "auto: the ort engine's output differs from eager's"
    return "eager", "auto: a PyTorch version not exported to ONNX yet (--engine ort exports it once)"


# -- the identity check -------------------------------------------------------------

#: the probe prompts of :func:`same_greedy_output` (texts: every tokenizer encodes them)
PROBES = ("The quick brown fox", "Once upon a time, in a land far away, there lived a", "1, 2, 3,")
#: the greedy tokens decoded after each probe
PROBE_TOKENS = 16


def _probe(engine: Any, prompts: list[list[int]]) -> list[list[int]]:
    import threading

    from llmos_serve.engine import SamplingParams, Sequence

    done = threading.Semaphore(0)
    seqs = [Sequence(prompt_ids=p, params=SamplingParams(max_tokens=PROBE_TOKENS, temperature=0.0),
                     sink=lambda ev: done.release() if ev[0] == "finish" else None) for p in prompts]
    engine.start()
    try:
        engine.submit(seqs)
        for _ in seqs:
            if not done.acquire(timeout=300):
                raise TimeoutError("the probe did not finish in 300 s")
    finally:
        engine.stop()
    errors = [s.error for s in seqs if s.error]
    if errors:
        raise RuntimeError(errors[0])
    return [list(s.generated) for s in seqs]


def same_greedy_output(loaded: Any, onnx_model: Any) -> str | None:
    """None when the ort engine (``onnx_model``) and the eager engine (``loaded.model``)
    decode the same greedy tokens after each of :data:`PROBES`, all in one batch;
    otherwise the first difference, in words."""
    from llmos_serve.engine import Engine
    from llmos_serve.ort_engine import OrtEngine

    tok = loaded.tokenizer
    prompts = [list(tok(p)["input_ids"]) or [0] for p in PROBES]
    try:
        got = {name: _probe(cls(model, tok, max_batch_size=len(prompts), label=f"{loaded.ref} probe"), prompts)
               for name, cls, model in (("eager", Engine, loaded.model), ("ort", OrtEngine, onnx_model))}
    except Exception as exc:  # noqa: BLE001 - a graph that does not run is not identical
        return f"the probe failed: {type(exc).__name__}: {exc}"
    for i, (a, b) in enumerate(zip(got["eager"], got["ort"], strict=True)):
        if a != b:
            k = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return f"probe {i + 1} ({PROBES[i]!r}), token {k + 1}: eager {a[k:k + 1]}, ort {b[k:k + 1]}"
    return None


def create(kind: str, loaded: Any, tags: dict[str, str] | None = None, **options: Any) -> Any:
    """Build the engine :func:`choose` picks; the engine's ``kind`` attribute names it."""
    name, why = choose(kind, loaded, tags)
    engine = available()[name](loaded, **options)
    engine.kind = name
    log.info("%s: %s engine (%s)", loaded.ref, name, why)
    return engine
