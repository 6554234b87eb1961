"""Read a safetensors file's layout without torch (json + struct).

Format: 8 bytes little-endian header length ``N``, ``N`` bytes of JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the data buffer. The registry stores the first ``8 + N`` bytes as one blob and
each tensor's bytes as one blob, in offset order, so the file reassembles
bit-identical and unchanged tensors are shared between versions.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from llmos.errors import ValidationError

MAX_HEADER = 100 << 20

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
    "C64": 8, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1,
}  # fmt: skip


@dataclass
class Part:
    """A byte range of the file: the header (``name="__header__"``) or one tensor."""

    name: str
    offset: int
    size: int
    dtype: str | None = None
    shape: list[int] | None = None


HEADER = "__header__"
GAP = "__gap__"


def layout(path: Path, file_size: int, head: bytes) -> list[Part]:
    """Parts of the safetensors file at ``path`` (``head`` = its first bytes, at
    least 8), covering the whole file in order.

    :raises ValidationError: not a valid safetensors file (one line: what and where).
    """
    bad = f"{path} is not a valid safetensors file"
    if file_size < 8 or len(head) < 8:
        raise ValidationError(f"{bad}: only {file_size} bytes; re-save it with safetensors.torch.save_file")
    (n,) = struct.unpack("<Q", head[:8])
    if n > MAX_HEADER or 8 + n > file_size:
        raise ValidationError(f"{bad}: header length {n} exceeds the file; the file is truncated or corrupt")
    return _parts(path, file_size, n, head[8 : 8 + n] if len(head) >= 8 + n else None)


def read_layout(path: Path) -> list[Part]:
    """Like :func:`layout`, reading the header from ``path``."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) == 8:
            (n,) = struct.unpack("<Q", head)
            if n <= MAX_HEADER and 8 + n <= size:
                head += fh.read(n)
    return layout(path, size, head)


def _parts(path: Path, file_size: int, n: int, header: bytes | None) -> list[Part]:
    bad = f"{path} is not a valid safetensors file"
    if header is None:
        with open(path, "rb") as fh:
            fh.seek(8)
            header = fh.read(n)
    try:
        meta = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{bad}: header is not JSON ({exc}); the file is truncated or corrupt") from exc
    if not isinstance(meta, dict):
        raise ValidationError(f"{bad}: header is not a JSON object")
    data_start = 8 + n
    tensors: list[Part] = []
    for name, info in meta.items():
        if name == "__metadata__":
            continue
        try:
            dtype = info["dtype"]
            shape = [int(d) for d in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"{bad}: tensor {name!r} has no valid dtype/shape/data_offsets") from exc
        if not 0 <= begin <= end or data_start + end > file_size:
            raise ValidationError(
                f"{bad}: tensor {name!r} bytes {begin}..{end} lie outside the file; the file is truncated"
            )
        count = 1
        for d in shape:
            count *= d
        width = DTYPE_SIZES.get(str(dtype))
        if width is not None and str(dtype) not in ("F4", "F6_E2M3", "F6_E3M2") and count * width != end - begin:
            raise ValidationError(
                f"{bad}: tensor {name!r} ({dtype}{shape}) should take {count * width} bytes, not {end - begin}"
            )
        tensors.append(Part(name, data_start + begin, end - begin, str(dtype), shape))
    tensors.sort(key=lambda p: (p.offset, p.size))
    parts = [Part(HEADER, 0, data_start)]
    pos = data_start
    for t in tensors:
        if t.offset < pos:
            raise ValidationError(f"{bad}: tensor {t.name!r} overlaps another tensor")
        if t.offset > pos:  # unusual padding between tensors: keep it, bit-identical
            parts.append(Part(GAP, pos, t.offset - pos))
        parts.append(t)
        pos = t.offset + t.size
    if pos < file_size:
        parts.append(Part(GAP, pos, file_size - pos))
    return parts
