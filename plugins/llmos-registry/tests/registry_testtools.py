"""Helpers of the registry tests: safetensors files written by hand, tiny model folders."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

DTYPES = {"F32": 4, "F16": 2, "I64": 8, "U8": 1, "BF16": 2}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict | None = None) -> bytes:
    """Write a safetensors file by hand (json + struct, as the format spec says) and
    return its bytes. ``tensors``: name → (dtype, shape, raw bytes)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    data = struct.pack("<Q", len(hbytes)) + hbytes + b"".join(raw for _, _, raw in tensors.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def tensor(seed: int, n: int = 64, dtype: str = "F32") -> tuple[str, list[int], bytes]:
    """A deterministic tensor of ``n`` elements."""
    import random

    rnd = random.Random(seed)
    return dtype, [n], rnd.randbytes(n * DTYPES[dtype])


def make_model(root: Path, seeds: list[int], n: int = 64, extra: dict[str, str] | None = None) -> Path:
    """A Hugging Face layout directory: config.json, tokenizer.json, model.safetensors
    with one tensor per seed (``layer{i}``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "tiny", "layers": len(seeds)}))
    (root / "tokenizer.json").write_text(json.dumps({"vocab": ["a", "b"]}))
    write_safetensors(root / "model.safetensors", {f"layer{i}": tensor(s, n) for i, s in enumerate(seeds)})
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
