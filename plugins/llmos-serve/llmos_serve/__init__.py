"""llmos-serve: an OpenAI-compatible server for llmos models.

``llmos serve MODEL_REF`` serves a registry version (``name``, ``name:N`` or
``name@alias``) or a local Hugging Face-layout directory over HTTP with dynamic
batching, following aliases, with an optional canary. ``llmos deploy
promote|rollback`` moves aliases. Heavy libraries (torch, transformers,
fastapi) are imported only by the modules that need them.
"""

__version__ = "0.1.0"
