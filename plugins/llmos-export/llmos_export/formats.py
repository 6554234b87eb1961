"""Export formats as extension points (``llmos_register_export_formats``): the
``onnx`` and ``safetensors`` formats this plugin registers, and ``deployment.export``,
which writes the run's model in any registered format."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmos.sdk import EXPORT_PATH, MODEL, TOKENIZER, ValidationError


def onnx_format(model: Any, tokenizer: Any, out_dir: Path | str, config: Any) -> list[Path]:
    """The ``onnx`` export format: ``factory(model, tokenizer, out_dir, config)``."""
    from llmos_export.onnx_export import export_onnx

    files, _report = export_onnx(model, tokenizer, out_dir, config)
    return files


def safetensors_format(model: Any, tokenizer: Any, out_dir: Path | str, config: Any) -> list[Path]:
    """The ``safetensors`` export format: a portable Hugging Face directory."""
    from llmos_export.safetensors_export import export_safetensors

    return export_safetensors(model, tokenizer, out_dir, config.dtype)


class ExportStep:
    """``deployment.export``: write ``ctx.artifacts["model"]`` in the registered format named
    by ``format`` into ``<workdir>/<stage id>-export`` (``ctx.artifacts["export_path"]``)."""

    def __init__(self, config: Any = None) -> None:
        from llmos_export.config import ExportConfig

        self.config = config if config is not None else ExportConfig()

    def run(self, ctx: Any) -> dict[str, float]:
        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("deployment.export needs a model: put a model or training stage before it")
        from llmos_export.config import resolve_format

        ext, settings = resolve_format(self.config)
        out = Path(ctx.workdir) / f"{getattr(ctx.stage, 'id', None) or 'export'}-export"
        if out.exists():
            shutil.rmtree(out)
        files = ext.load_factory()(model, TOKENIZER.get(ctx), out, settings)
        EXPORT_PATH.set(ctx, str(out))
        return {"files": float(len(files)), "bytes": float(sum(Path(f).stat().st_size for f in files))}

    __call__ = run
