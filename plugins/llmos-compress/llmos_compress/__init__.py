"""llmos-compress: the standard compression plugin.

- :mod:`llmos_compress.int8` — dynamic int8 quantization of ``nn.Linear`` (``compression.int8``),
  ``save_int8`` / ``load_int8`` (int8 weights + scales as safetensors)
- :mod:`llmos_compress.prune` — magnitude and structured pruning (``compression.prune``)
- :mod:`llmos_compress.distill` — knowledge distillation (``compression.distill``)
- :mod:`llmos_compress.measure` — parameters, bytes, tokens/s, latency, perplexity
- :mod:`llmos_compress.cli` — ``llmos compress`` and ``llmos compare``

Importing this package is light; torch is imported by the modules above.
"""

__version__ = "0.1.0"
