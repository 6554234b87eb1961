"""Dynamic int8 quantization of ``nn.Linear`` layers with PyTorch's own
``torch.ao.quantization.quantize_dynamic``, and its safetensors round trip.

The quantized modules keep their weights in packed, backend-specific objects that
are not plain tensors, so a quantized model carries ``llmos_saver`` and
``llmos_loader`` (see DESIGN.md §7):

- :func:`save_int8` writes ``config.json``, ``quantization.json`` (which modules, scheme)
  and ``model.safetensors`` holding, for each quantized layer ``L``, ``L.weight.int8``
  (int8), ``L.weight.scale`` (float32), ``L.weight.zero_point`` (int64) and ``L.bias``,
  plus every other tensor unchanged in fp32;
- :func:`load_int8` rebuilds the fp32 architecture from ``config.json``, loads the
  fp32 tensors, quantizes the same modules and sets their stored int8 weights, so the
  reloaded model computes exactly the same logits.

Nothing is pickled.
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmos.sdk import LINEAGE, METRICS, MODEL, ValidationError

from llmos_models.lm import is_quantized  # noqa: F401 - re-exported for prune/distill

METHOD = "int8_dynamic"
SAVER = "llmos_compress.int8:save_int8"
LOADER = "int8"  # the model loader this plugin registers (llmos_register_model_loaders)
QUANT_JSON = "quantization.json"
WEIGHTS = "model.safetensors"


@contextmanager
def _quiet() -> Any:
    """PyTorch warns that its quantized tensor types are deprecated in favour of torchao;
    they are what ``quantize_dynamic`` uses, so keep the user's terminal clean."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantiz.*")
        yield


def quantized_modules(model: Any) -> list[str]:
    """Names of the dynamically quantized ``Linear`` modules of ``model``."""
    from torch.ao.nn.quantized import dynamic as nnqd

    return [name for name, m in model.named_modules() if isinstance(m, nnqd.Linear)]




def _conv1d_to_linear(model: Any) -> Any:
    """GPT-2 keeps its projections in ``transformers``' ``Conv1D`` (a transposed Linear);
    replace them by ``nn.Linear`` so dynamic quantization reaches them (in place)."""
    import torch

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        return model
    for name, mod in list(model.named_modules()):
        if isinstance(mod, Conv1D):
            lin = torch.nn.Linear(mod.weight.shape[0], mod.weight.shape[1], bias=mod.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(mod.weight.t())
                if mod.bias is not None:
                    lin.bias.copy_(mod.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, lin)
    return model


def _targets(model: Any, include_lm_head: bool, exclude: list[str]) -> list[str]:
    import torch

    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = []
    for name, m in model.named_modules():
        if type(m) is not torch.nn.Linear:
            continue
        if m is out_emb and not include_lm_head:
            continue
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        names.append(name)
    return names


def _quantize(model: Any, names: list[str], per_channel: bool, inplace: bool) -> Any:
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with _quiet():
        return quantize_dynamic(model, {n: qconfig for n in names}, dtype=torch.qint8, inplace=inplace)


def _mark(model: Any, names: list[str], per_channel: bool) -> Any:
    model.llmos_saver = SAVER
    model.llmos_loader = LOADER
    model.llmos_compression = {"method": METHOD, "per_channel": per_channel, "modules": names}
    return model


def quantize_int8(model: Any, *, per_channel: bool = True, include_lm_head: bool = True,
                  exclude: list[str] | None = None) -> Any:
    """A copy of ``model`` with its ``nn.Linear`` layers quantized to int8 (dynamic
    activations); the original is left as it was.

    :raises ValidationError: the model is already quantized, or has no Linear layer.
    """
    if is_quantized(model):
        raise ValidationError(
            "this model is already int8-quantized: quantize its fp32 parent instead (see its lineage)"
        )
    import copy

    work = _conv1d_to_linear(copy.deepcopy(model)).eval()
    names = _targets(work, include_lm_head, list(exclude or []))
    if not names:
        raise ValidationError("the model has no nn.Linear layer to quantize (check 'exclude')")
    qmodel = _quantize(work, names, per_channel, inplace=True)
    qmodel.eval()
    return _mark(qmodel, names, per_channel)


def _linear_tensors(mod: Any, name: str) -> dict[str, Any]:
    import torch

    with _quiet():
        w, b = mod._packed_params._weight_bias()
        out = {f"{name}.weight.int8": w.int_repr().contiguous()}
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            out[f"{name}.weight.scale"] = w.q_per_channel_scales().to(torch.float32).contiguous()
            out[f"{name}.weight.zero_point"] = w.q_per_channel_zero_points().to(torch.int64).contiguous()
        else:
            out[f"{name}.weight.scale"] = torch.tensor([w.q_scale()], dtype=torch.float32)
            out[f"{name}.weight.zero_point"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
    if b is not None:
        out[f"{name}.bias"] = b.detach().to(torch.float32).contiguous()
    return out


def save_int8(model: Any, path: Path | str) -> None:
    """Write a quantized model to directory ``path`` (the ``llmos_saver`` of int8 models)."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    names = quantized_modules(model)
    if not names:
        raise ValidationError("save_int8 needs a model quantized by compression.int8")
    modules = dict(model.named_modules())
    tensors: dict[str, Any] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        if any(key.startswith(n + ".") for n in names) or not isinstance(value, torch.Tensor) or value.is_quantized:
            continue
        if value.data_ptr() in seen:  # a tied weight: stored once, re-tied by the architecture on load
            continue
        seen.add(value.data_ptr())
        tensors[key] = value.detach().contiguous()
    for n in names:
        tensors.update(_linear_tensors(modules[n], n))
    per_channel = bool(getattr(model, "llmos_compression", {}).get("per_channel", True))
    save_file(tensors, str(path / WEIGHTS), metadata={"format": "pt", "llmos_quantization": METHOD})
    model.config.save_pretrained(str(path))
    (path / QUANT_JSON).write_text(json.dumps(
        {"method": METHOD, "dtype": "qint8", "per_channel": per_channel, "modules": names,
         "torch_backend": torch.backends.quantized.engine}, indent=2))


def load_int8(path: Path | str) -> Any:
    """Rebuild a model written by :func:`save_int8` (the ``int8`` model loader)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    qfile = path / QUANT_JSON
    if not qfile.is_file() or not (path / WEIGHTS).is_file():
        raise ValidationError(f"{path} is not an int8 model directory (needs {QUANT_JSON} and {WEIGHTS})")
    info = json.loads(qfile.read_text())
    names: list[str] = list(info["modules"])
    per_channel = bool(info.get("per_channel", True))
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)  # a model dir never runs code
    model = _conv1d_to_linear(AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False))
    tensors = load_file(str(path / WEIGHTS))
    qkeys = {k for k in tensors if any(k.startswith(n + ".") for n in names)}
    fp = {k: v for k, v in tensors.items() if k not in qkeys}
    missing, unexpected = model.load_state_dict(fp, strict=False)
    state = model.state_dict()
    loaded = {state[k].data_ptr() for k in fp if k in state}
    missing = [k for k in missing if not any(k.startswith(n + ".") for n in names)
               and state[k].data_ptr() not in loaded]  # a tied weight shares a loaded tensor
    if unexpected or missing:
        raise ValidationError(
            f"{path}/{WEIGHTS} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]}): "
            f"re-save the model"
        )
    model.eval()
    _quantize(model, names, per_channel, inplace=True)
    modules = dict(model.named_modules())
    with _quiet():
        for n in names:
            q = tensors[f"{n}.weight.int8"]
            scale, zp = tensors[f"{n}.weight.scale"], tensors[f"{n}.weight.zero_point"]
            if per_channel:
                qw = torch._make_per_channel_quantized_tensor(q, scale.double(), zp, 0)
            else:
                qw = torch._make_per_tensor_quantized_tensor(q, float(scale[0]), int(zp[0]))
            modules[n].set_weight_bias(qw, tensors.get(f"{n}.bias"))
    return _mark(model, names, per_channel)


def quantize(model: Any, config: Any) -> Any:
    """The ``int8`` quantizer (llmos_register_quantizers): ``factory(model, config)``."""
    return quantize_int8(model, per_channel=config.per_channel, include_lm_head=config.include_lm_head,
                         exclude=config.exclude)


class QuantizeStep:
    """``compression.quantize``: quantize ``ctx.artifacts["model"]`` with the registered
    quantizer named by ``method`` (``llmos components --kind quantizers``)."""

    def __init__(self, config: Any = None) -> None:
        from llmos_compress.config import QuantizeConfig

        self.config = config if config is not None else QuantizeConfig()

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_compress.config import resolve_quantizer
        from llmos_compress.measure import count_parameters

        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("compression.quantize needs a model: put model.load or a training stage before it")
        ext, settings = resolve_quantizer(self.config)
        qmodel = ext.load_factory()(model, settings)
        MODEL.set(ctx, qmodel)
        dumped = settings.model_dump(mode="json") if hasattr(settings, "model_dump") else dict(settings or {})
        LINEAGE.set(ctx, {"method": getattr(qmodel, "llmos_compression", {}).get("method") or ext.name,
                          "settings": dumped, "component": f"{ext.plugin}:quantizers.{ext.name}"})
        metrics = {"params": float(count_parameters(qmodel))}
        METRICS.set(ctx, dict(metrics))  # the parent's evaluation no longer describes the model
        return metrics

    __call__ = run


class Int8Step(QuantizeStep):
    """``compression.int8``: the older name of ``compression.quantize`` with ``method = "int8"``.
    Its settings are the int8 quantizer's; the quantizer is looked up through
    ``llmos_register_quantizers`` exactly as ``compression.quantize`` looks it up."""

    def __init__(self, config: Any = None) -> None:
        from llmos_compress.config import Int8Config, QuantizeConfig

        self.int8 = config if config is not None else Int8Config()
        # model_construct: the lookup happens when the step runs (the settings are validated already)
        super().__init__(QuantizeConfig.model_construct(method="int8", settings=self.int8.model_dump(mode="json")))

    def run(self, ctx: Any) -> dict[str, float]:
        if MODEL.get(ctx) is None:
            raise ValidationError("compression.int8 needs a model: put model.load or a training stage before it")
        metrics = super().run(ctx)
        metrics["quantized_layers"] = float(len(MODEL.get(ctx).llmos_compression["modules"]))
        METRICS.set(ctx, dict(metrics))
        return metrics

    __call__ = run
