"""Hook module of llmos-export (light: imports only llmos)."""

from __future__ import annotations

from llmos import hookimpl

LLMOS_API = 2


@hookimpl
def llmos_register_deployment_steps(register):
    from llmos_export.config import ExportConfig, OnnxConfig, SafetensorsConfig

    register(
        "export",
        "llmos_export.formats:ExportStep",
        config=ExportConfig,
        description="Write the model in any registered export format (format = ..., llmos components --kind "
        "export_formats)",
    )
    register(
        "onnx",
        "llmos_export.onnx_export:OnnxExporter",
        config=OnnxConfig,
        description="Export to ONNX (torch.onnx dynamo exporter, KV cache), logits checked with ONNX Runtime; "
        "optional ONNX Runtime int8; deployment.export with format = onnx, plus registering the export as a "
        "version",
    )
    register(
        "safetensors",
        "llmos_export.safetensors_export:SafetensorsExporter",
        config=SafetensorsConfig,
        description="Portable Hugging Face directory with plain safetensors weights (int8 models dequantized)",
    )


@hookimpl
def llmos_register_model_loaders(register):
    register("onnx", "llmos_export.runtime:load_onnx",
             description="ONNX exports (deployment.onnx), run with ONNX Runtime")


@hookimpl
def llmos_register_export_formats(register):
    from llmos_export.config import OnnxConfig, SafetensorsConfig

    register("onnx", "llmos_export.formats:onnx_format", config=OnnxConfig,
             description="ONNX graph with a KV cache, logits checked with ONNX Runtime")
    register("safetensors", "llmos_export.formats:safetensors_format", config=SafetensorsConfig,
             description="Portable Hugging Face directory with plain safetensors weights")

