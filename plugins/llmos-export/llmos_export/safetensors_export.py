"""``deployment.safetensors``: a portable Hugging Face directory with plain safetensors
weights, loadable by ``transformers.AutoModelForCausalLM.from_pretrained`` without llmos
(int8 models from ``compression.int8`` are dequantized to the chosen dtype)."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmos.sdk import MODEL, TOKENIZER, ValidationError

from llmos_models.lm import is_quantized




def _restore_conv1d(model: Any) -> Any:
    """Put back ``transformers``' ``Conv1D`` (GPT-2) where int8 quantization had replaced it
    by ``nn.Linear`` (its weight transposed), so the weights load under the architecture's
    own names and shapes (in place)."""
    import torch

    try:
        from transformers import AutoModelForCausalLM
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        return model
    with torch.device("meta"):
        reference = AutoModelForCausalLM.from_config(model.config)
    for name, ref in reference.named_modules():
        if not isinstance(ref, Conv1D):
            continue
        lin = model.get_submodule(name)
        if not isinstance(lin, torch.nn.Linear):
            continue
        conv = Conv1D(lin.out_features, lin.in_features)
        with torch.no_grad():
            conv.weight.copy_(lin.weight.t())
            if lin.bias is not None:
                conv.bias.copy_(lin.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, conv)
    return model


def export_safetensors(model: Any, tokenizer: Any, out_dir: Path | str, dtype: str = "float32") -> list[Path]:
    """Write ``model`` as a plain HF directory into ``out_dir``; returns the files."""
    import torch

    from llmos_export.onnx_export import dequantize

    out_dir = Path(out_dir)
    from llmos_export.runtime import OnnxCausalLM

    if isinstance(model, OnnxCausalLM):
        raise ValidationError("an ONNX export has no PyTorch weights to write as safetensors: "
                              "export the version it was made from")
    m = copy.deepcopy(model)
    if is_quantized(m):
        dequantize(m)
        _restore_conv1d(m)
    m = m.to(getattr(torch, dtype)).eval()
    if hasattr(m, "tie_weights"):
        m.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=".st-", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        m.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            from llmos_models.chat import with_chat_template

            # the version's chat template (the default if none) in tokenizer_config.json:
            # apply_chat_template works on the export
            with_chat_template(tokenizer).save_pretrained(str(tmp), save_jinja_files=False)
        (tmp / "llmos.json").write_text(json.dumps({"format": 1, "architecture": type(m).__name__,
                                                    "exported": {"format": "safetensors", "dtype": dtype}}, indent=2))
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            shutil.move(str(f), out_dir / f.name)
            written.append(out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


class SafetensorsExporter:
    """``deployment.safetensors``: ``export(version_dir, out_dir)`` and ``run(ctx)``."""

    def __init__(self, config: Any = None) -> None:
        from llmos_export.config import SafetensorsConfig

        self.config = config if config is not None else SafetensorsConfig()

    def export(self, version_dir: Path | str, out_dir: Path | str) -> list[Path]:
        from llmos_models.io import load_model

        model, tokenizer = load_model(version_dir)
        return export_safetensors(model, tokenizer, out_dir, self.config.dtype)

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_export.onnx_export import _pipeline_name

        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("deployment.safetensors needs a model: put a model or training stage before it")
        sid = getattr(ctx.stage, "id", None) or "safetensors"
        out = Path(ctx.workdir) / f"{sid}-export"
        if out.exists():
            shutil.rmtree(out)
        files = export_safetensors(model, TOKENIZER.get(ctx), out, self.config.dtype)
        size = sum(f.stat().st_size for f in files if f.suffix == ".safetensors")
        ctx.register_version(out, model=self.config.model or _pipeline_name(ctx, "hf"), metrics={"size_bytes": size},
                             tags={"format": "safetensors"},
                             lineage={"method": "export:safetensors", "settings": {"dtype": self.config.dtype}},
                             description=f"portable safetensors export ({self.config.dtype})")
        return {"size_bytes": float(size)}

    __call__ = run
