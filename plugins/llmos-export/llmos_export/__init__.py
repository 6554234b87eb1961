"""llmos-export: the standard export plugin.

- :mod:`llmos_export.onnx_export` — ``deployment.onnx``: ONNX with a KV cache, checked
  with ONNX Runtime against PyTorch, optional ONNX Runtime int8
- :mod:`llmos_export.runtime` — ``OnnxCausalLM``: load an exported directory and generate
- :mod:`llmos_export.safetensors_export` — ``deployment.safetensors``: a portable
  Hugging Face directory (int8 models dequantized)

Importing this package is light; torch and onnx are imported by the modules above.
"""

__version__ = "0.1.0"
