"""``deployment.onnx``: export a causal LM to ONNX and check it with ONNX Runtime.

The graph is produced by PyTorch's current exporter (``torch.onnx.export(...,
dynamo=True)``, i.e. ``torch.export`` + onnxscript) from a wrapper around the
``transformers`` model that takes the KV cache as plain tensors, so one graph serves the
prompt (empty cache) and every next token, with an attention mask and position ids so
that padded batches work. Format 3 (:mod:`llmos_export.kv_graph`: one cache input per
layer, read in place; only the new tokens' keys and values come out) is written when
the architecture's attention goes through ``transformers``' attention interface;
otherwise format 2 (the stacked cache in and out, attention in its "eager" form). See
:mod:`llmos_export.runtime` for both.

Before anything is written, ONNX Runtime runs the graph on a random sequence (prompt,
then one cached next-token step) and its logits are compared with PyTorch's: the
largest absolute difference is recorded in ``onnx.json`` and must stay within
``tolerance``. With ``quantize = true``, ``model.int8.onnx`` is written by ONNX
Runtime's dynamic int8 quantization, and its difference and top-1 agreement with
PyTorch are recorded too (reported, not enforced: it is a lossy format).

An int8 model made by ``compression.int8`` is dequantized to fp32 first (its weights
keep their int8 rounding); use ``quantize = true`` for an int8 ONNX graph.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from llmos.sdk import MODEL, ONNX_VERSION, TOKENIZER, LlmosError, ValidationError, get_manager

FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
#: the inputs of a format-2 graph (format-1 graphs, exported before, lack the mask and positions;
#: format 3 has one cache input per layer, :func:`llmos_export.kv_graph.input_names`)
INPUTS = ("input_ids", "attention_mask", "position_ids", "past_keys", "past_values")


def dequantize(model: Any) -> Any:
    """``model`` with every dynamically quantized ``Linear`` replaced by an fp32 one (in place)."""
    import torch
    from torch.ao.nn.quantized import dynamic as nnqd

    for name, mod in list(model.named_modules()):
        if isinstance(mod, nnqd.Linear):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w, b = mod._packed_params._weight_bias()
                lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
                with torch.no_grad():
                    lin.weight.copy_(w.dequantize())
                    if b is not None:
                        lin.bias.copy_(b)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, lin)
    for attr in ("llmos_saver", "llmos_loader", "llmos_compression"):
        if hasattr(model, attr):
            delattr(model, attr)
    return model


def _kv_dims(config: Any) -> dict[str, int]:
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    kv = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", None)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden and heads else None)
    if not (layers and kv and head_dim):
        raise ValidationError(
            "ONNX export supports decoder models with num_hidden_layers, num_attention_heads and hidden_size "
            "in their config (Llama-style)"
        )
    return {"layers": int(layers), "kv_heads": int(kv), "head_dim": int(head_dim)}


def _wrapper(model: Any, layers: int) -> Any:
    import torch
    from transformers import DynamicCache

    class CachedLM(torch.nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: Any, attention_mask: Any, position_ids: Any, past_keys: Any,
                    past_values: Any) -> Any:
            cache = DynamicCache(config=self.lm.config)
            for i in range(layers):
                cache.update(past_keys[i], past_values[i], i)
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          past_key_values=cache, use_cache=True)
            c = out.past_key_values
            keys = torch.stack([c.layers[i].keys for i in range(layers)])
            values = torch.stack([c.layers[i].values for i in range(layers)])
            return out.logits, keys, values

    return CachedLM(model).eval()


def _eager_copy(model: Any) -> Any:
    from llmos_models.lm import is_quantized

    m = copy.deepcopy(model)
    if is_quantized(m):
        dequantize(m)
    m.float().eval()
    if hasattr(m, "set_attn_implementation"):
        m.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        m.config._attn_implementation = "eager"
    return m


def check_against_pytorch(model: Any, onnx_path: Path, tokens: int, seed: int = 0) -> dict[str, float]:
    """Run the graph with ONNX Runtime on a random sequence (prompt, then one cached
    step) and compare with PyTorch: max |Δlogit| and top-1 agreement."""
    import numpy as np
    import torch

    from llmos_export.runtime import run_graph, session

    sess = session(onnx_path)
    dims = _kv_dims(model.config)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, int(model.config.vocab_size), (1, tokens + 1), generator=g)
    with torch.no_grad():
        ref = model(input_ids=x).logits.float().numpy()
    z = np.zeros((dims["layers"], 1, dims["kv_heads"], 0, dims["head_dim"]), dtype=np.float32)
    prompt = x[:, :-1].numpy()
    logits, keys, values = run_graph(sess, prompt, z, z)
    nxt, _, _ = run_graph(sess, x[:, -1:].numpy(), keys, values)
    got = np.concatenate([logits, nxt], axis=1)
    return {
        "max_abs_diff": float(np.abs(got - ref).max()),
        "top1_agreement": float((got.argmax(-1) == ref.argmax(-1)).mean()),
        "logit_scale": float(np.abs(ref).max()),
    }


@contextlib.contextmanager
def _quiet(logger_name: str) -> Any:
    """Silence a library logger's warnings (torch.onnx logs one line per torchvision
    operator it cannot register when torchvision is absent — noise, not a problem)."""
    log = logging.getLogger(logger_name)
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


def _io(fmt: int) -> dict[str, Any]:
    """``onnx.json``'s description of a graph's inputs and outputs."""
    common = {"input_ids": "int64 (batch, n)",
              "attention_mask": "int64 (batch, past + n): 1 for tokens, 0 for padding and unused cache columns",
              "position_ids": "int64 (batch, n): each token's position, padding not counted"}
    if fmt == 3:
        return {"inputs": {**common, "past_key_<i>": "float32 (batch, kv_heads, past, head_dim), layer i",
                           "past_value_<i>": "float32 (batch, kv_heads, past, head_dim), layer i"},
                "outputs": {"logits": "float32 (batch, n, vocab)",
                            "new_keys": "float32 (layers, batch, kv_heads, n, head_dim): the n new tokens only",
                            "new_values": "float32 (layers, batch, kv_heads, n, head_dim): the n new tokens only"}}
    return {"inputs": {**common, "past_keys": "float32 (layers, batch, kv_heads, past, head_dim)",
                       "past_values": "float32 (layers, batch, kv_heads, past, head_dim)"},
            "outputs": {"logits": "float32 (batch, n, vocab)", "keys": "past_keys with n more positions",
                        "values": "past_values with n more positions"}}


def _fuse_for_ort(onnx_path: Path, eager: Any, cfg: Any) -> dict[str, int]:
    """Fuse the graph for ONNX Runtime (onnxscript's ``optimize_for_ort``: RMS/skip
    normalisation, rotary embeddings as single operators), in place, if the fused graph
    still passes the check; returns what was fused (nothing when it was not kept)."""
    try:
        import onnx_ir as ir
        from onnxscript.rewriter.ort_fusions import optimize_for_ort
    except ImportError:
        return {}
    fused_path = onnx_path.with_name("fused-" + onnx_path.name)
    try:
        graph = ir.load(str(onnx_path))
        graph, counts = optimize_for_ort(graph)
        counts = {k: int(v) for k, v in counts.items() if v}
        if not counts:
            return {}
        ir.save(graph, str(fused_path))
        if not check_against_pytorch(eager, fused_path, cfg.check_tokens)["max_abs_diff"] <= cfg.tolerance:
            return {}
        fused_path.replace(onnx_path)
        return counts
    except Exception as exc:  # noqa: BLE001 - fusion is an optimisation: the plain graph stays
        logging.getLogger("llmos.export").info("ONNX Runtime fusions not applied: %s", exc)
        return {}
    finally:
        fused_path.unlink(missing_ok=True)


def _export_graph(model: Any, eager: Any, dims: dict[str, int], onnx_path: Path, cfg: Any) -> int:
    """Write the graph of ``eager`` to ``onnx_path``: format 3 if its attention exports
    that way, else format 2. Returns the format."""
    import torch

    from llmos_export import kv_graph

    layers = dims["layers"]
    example_ids = torch.randint(0, int(eager.config.vocab_size), (2, 3))
    example_mask = torch.ones(2, 8, dtype=torch.long)
    example_mask[1, :2] = 0  # a padded row, as a batching server sends
    example_pos = torch.tensor([[5, 6, 7], [3, 4, 5]])
    dyn = torch.export.Dim.DYNAMIC
    ids_dims = {"input_ids": {0: dyn, 1: dyn}, "attention_mask": {0: dyn, 1: dyn}, "position_ids": {0: dyn, 1: dyn}}

    def export(wrapper: Any, args: tuple[Any, ...], names: list[str], outputs: list[str], shapes: Any) -> None:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(onnx_path), dynamo=True, opset_version=cfg.opset,
                              external_data=False, verbose=False, input_names=names, output_names=outputs,
                              dynamic_shapes=shapes)

    past = [torch.zeros(2, dims["kv_heads"], 5, dims["head_dim"]) for _ in range(2 * layers)]
    implementation = eager.config._attn_implementation
    try:
        export(kv_graph.wrapper(eager, layers), (example_ids, example_mask, example_pos, *past),
               kv_graph.input_names(layers), ["logits", "new_keys", "new_values"],
               (*ids_dims.values(), tuple({0: dyn, 2: dyn} for _ in past)))
        return 3
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; format 2 still works
        logging.getLogger("llmos.export").info("%s: no format-3 graph (%s); writing format 2", type(model).__name__,
                                                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc)
    finally:
        eager.set_attn_implementation(implementation)
    stacked = torch.zeros(layers, 2, dims["kv_heads"], 5, dims["head_dim"])
    try:
        export(_wrapper(eager, layers), (example_ids, example_mask, example_pos, stacked, stacked.clone()),
               list(INPUTS), ["logits", "keys", "values"],
               {**ids_dims, "past_keys": {1: dyn, 3: dyn}, "past_values": {1: dyn, 3: dyn}})
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise LlmosError(f"torch.onnx.export failed for {type(model).__name__}: "
                         f"{str(exc).strip().splitlines()[0][:300]}") from exc
    return 2


def export_onnx(model: Any, tokenizer: Any, out_dir: Path | str, cfg: Any = None, *,
                generation: dict[str, Any] | None = None) -> tuple[list[Path], dict[str, Any]]:
    """Export ``model`` (+ tokenizer and config) into ``out_dir``; returns the files
    written and the report recorded in ``onnx.json``.

    :raises LlmosError: the exporter failed, or ONNX Runtime's logits differ from
        PyTorch's by more than ``cfg.tolerance`` (nothing is written then).
    """
    import torch

    from llmos_export.config import OnnxConfig

    cfg = cfg or OnnxConfig()
    out_dir = Path(out_dir)
    dims = _kv_dims(getattr(model, "config", None))
    eager = _eager_copy(model)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        onnx_path = tmp / FILES["fp32"]
        t0 = time.perf_counter()
        fmt = _export_graph(model, eager, dims, onnx_path, cfg)
        fused = _fuse_for_ort(onnx_path, eager, cfg)
        export_s = time.perf_counter() - t0
        check = check_against_pytorch(eager, onnx_path, cfg.check_tokens)
        if not check["max_abs_diff"] <= cfg.tolerance:
            raise LlmosError(
                f"ONNX Runtime logits differ from PyTorch by {check['max_abs_diff']:.3g} > tolerance {cfg.tolerance}: "
                f"the export is wrong; raise --set tolerance=... only if the difference is expected"
            )
        report: dict[str, Any] = {
            "format": fmt,
            "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
            "opset": cfg.opset,
            **_io(fmt),
            "kv": dims,
            "files": {"fp32": FILES["fp32"]},
            "check": {"fp32": {**check, "tolerance": cfg.tolerance, "tokens": cfg.check_tokens}},
            "fused": fused,
            "export_seconds": round(export_s, 2),
        }
        if cfg.quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            q_path = tmp / FILES["int8"]
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # ORT suggests a pre-processing step not needed for dynamic quantization
            try:
                quantize_dynamic(str(onnx_path), str(q_path), weight_type=QuantType.QInt8)
            finally:
                root.setLevel(level)
            report["files"]["int8"] = FILES["int8"]
            report["check"]["int8"] = check_against_pytorch(eager, q_path, cfg.check_tokens)
        eager.config.save_pretrained(str(tmp))
        if tokenizer is not None:
            from llmos_models.chat import with_chat_template

            # the version's chat template (the default if none) in tokenizer_config.json:
            # apply_chat_template works on the export
            with_chat_template(tokenizer).save_pretrained(str(tmp), save_jinja_files=False)
        (tmp / "onnx.json").write_text(json.dumps(report, indent=2))
        meta = {"format": 1, "architecture": "onnx", "loader": "onnx",
                "onnx": FILES["fp32"], "generation": generation or {}}
        (tmp / "llmos.json").write_text(json.dumps(meta, indent=2))
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            dest = out_dir / f.name
            shutil.move(str(f), dest)
            written.append(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written, report


def _pipeline_name(ctx: Any, suffix: str) -> str:
    spec = getattr(ctx, "spec", None)
    name = getattr(spec, "model", None) or getattr(spec, "name", None) or "model"
    return f"{name}-{suffix}"


class OnnxExporter:
    """``deployment.onnx``: ``export(version_dir, out_dir)`` for ``llmos model export
    --format onnx``, and ``run(ctx)`` for pipelines (exports ``ctx.artifacts["model"]``
    with the ``onnx`` export format, looked up as ``deployment.export`` looks it up, and
    registers the export as a derived version, lineage method ``export:onnx``)."""

    def __init__(self, config: Any = None) -> None:
        from llmos_export.config import OnnxConfig

        self.config = config if config is not None else OnnxConfig()

    def export(self, version_dir: Path | str, out_dir: Path | str) -> list[Path]:
        from llmos_models.io import load_model, read_meta

        model, tokenizer = load_model(version_dir)
        files, _ = export_onnx(model, tokenizer, out_dir, self.config,
                               generation=read_meta(version_dir).get("generation"))
        return files

    def run(self, ctx: Any) -> dict[str, float]:
        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("deployment.onnx needs a model: put a model, training or model.load stage before it")
        sid = getattr(ctx.stage, "id", None) or "onnx"
        out = Path(ctx.workdir) / f"{sid}-export"
        if out.exists():
            shutil.rmtree(out)
        # the onnx export format (llmos_register_export_formats), found as deployment.export finds it
        get_manager().get_extension("export_formats", "onnx").load_factory()(model, TOKENIZER.get(ctx), out,
                                                                              self.config)
        report = json.loads((out / "onnx.json").read_text())
        metrics = {"onnx_max_abs_diff": report["check"]["fp32"]["max_abs_diff"],
                   "onnx_top1_agreement": report["check"]["fp32"]["top1_agreement"]}
        if "int8" in report["check"]:
            metrics["onnx_int8_max_abs_diff"] = report["check"]["int8"]["max_abs_diff"]
            metrics["onnx_int8_top1_agreement"] = report["check"]["int8"]["top1_agreement"]
        settings = self.config.model_dump(mode="json", exclude={"model"})
        version = ctx.register_version(
            out, model=self.config.model or _pipeline_name(ctx, "onnx"), metrics=metrics, tags={"format": "onnx"},
            lineage={"method": "export:onnx", "settings": settings}, description="ONNX export",
        )
        ref = getattr(version, "ref", None)
        if ref:
            ONNX_VERSION.set(ctx, ref)
        return metrics

    __call__ = run
