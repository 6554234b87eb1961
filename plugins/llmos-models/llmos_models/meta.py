"""``llmos.json``, the llmos part of a model directory: its name and how it is read.

What the keys mean is documented in :mod:`llmos_models.io` (and, for adapters, in
:mod:`llmos_models.adapter`); both read it through :func:`read_meta`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmos.sdk import ValidationError

LLMOS_JSON = "llmos.json"


def read_meta(path: Path | str) -> dict[str, Any]:
    """The ``llmos.json`` of a model directory (``{}`` for a plain HF directory)."""
    f = Path(path) / LLMOS_JSON
    if not f.is_file():
        return {}
    try:
        meta = json.loads(f.read_text())
    except ValueError as exc:
        raise ValidationError(f"{f} is not valid JSON ({exc}); re-save the model") from None
    if not isinstance(meta, dict):
        raise ValidationError(f"{f} must hold a JSON object, got {type(meta).__name__}; re-save the model")
    return meta
