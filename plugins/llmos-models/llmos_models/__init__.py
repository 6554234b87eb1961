"""llmos-models: the standard model plugin.

- :mod:`llmos_models.build` — Llama/GPT-2 decoders from size presets (``model.llama``, ``model.gpt2``)
- :mod:`llmos_models.io` — ``save_model`` / ``load_model`` (safetensors, Hugging Face layout, ``llmos.json``)
- :mod:`llmos_models.evaluate` — ``perplexity``, ``unigram_perplexity``, ``generation_speed`` (``model.evaluate``)
- :mod:`llmos_models.generate` — ``GenerationSettings``, ``generate``, ``stream`` (``llmos generate``)
- :mod:`llmos_models.steps` — ``model.load`` and ``model.register``

Importing this package is light; torch and transformers are imported by the modules above.
"""

__version__ = "0.1.0"
