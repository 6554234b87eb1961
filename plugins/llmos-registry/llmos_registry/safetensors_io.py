"""Read a safetensors file's layout without torch (json + struct).

Format: 8 bytes little-endian header length ``N``, ``N`` bytes of JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the data buffer. The registry stores the first ``8 + N`` bytes as one blob and
each tensor's bytes as one blob, in offset order, so the file reassembles
bit-identical and unchanged tensors are shared between versions.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from llmos.sdk import ValidationError

MAX_HEADER = 100 << 20
#: the format nests 3 deep (``{name: {"shape": [...]}}``); deeper is refused before parsing
MAX_DEPTH = 4
MAX_NAME = 1024  # the registry stores part names in a String(1024)
MAX_DIMS = 64
MAX_DIM = (1 << 63) - 1

#: bits per element (F4/F6 pack several elements per byte)
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64,
    "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
DTYPE_SIZES = {k: max(1, v // 8) for k, v in DTYPE_BITS.items()}


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
    if header is None:
        with open(path, "rb") as fh:
            fh.seek(8)
            header = fh.read(n)
    try:
        return parse_header(header, file_size)
    except ValidationError as exc:
        raise ValidationError(f"{path} is not a valid safetensors file: {exc.message}") from None


def parse_header(header: bytes, file_size: int) -> list[Part]:
    """The parts of a safetensors file of ``file_size`` bytes whose header (the JSON
    after the 8-byte length) is ``header``, validated fully.

    :raises ValidationError: one line saying what is wrong (without the file name).
    """
    n = len(header)
    data_start = 8 + n
    if data_start > file_size:
        raise ValidationError(f"header length {n} exceeds the file; the file is truncated or corrupt")
    depth = _max_depth(header)
    if depth > MAX_DEPTH:
        raise ValidationError(f"header nests {depth} levels deep (the format needs {MAX_DEPTH - 1}); it was forged")
    try:
        meta = json.loads(header.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Refused as exc:
        raise ValidationError(str(exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"header is not JSON ({_first_line(exc)}); the file is truncated or corrupt") from None
    if not isinstance(meta, dict):
        raise ValidationError("header is not a JSON object")
    tensors: list[Part] = []
    for name, info in meta.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValidationError("__metadata__ must map names to strings")
            continue
        tensors.append(_tensor(name, info, data_start, file_size))
    tensors.sort(key=lambda p: (p.offset, p.size))
    parts = [Part(HEADER, 0, data_start)]
    pos = data_start
    for t in tensors:
        if t.offset < pos:
            raise ValidationError(f"tensor {t.name!r} overlaps another tensor")
        if t.offset > pos:  # unusual padding between tensors: keep it, bit-identical
            parts.append(Part(GAP, pos, t.offset - pos))
        parts.append(t)
        pos = t.offset + t.size
    if pos < file_size:
        parts.append(Part(GAP, pos, file_size - pos))
    return parts


def _tensor(name: str, info: object, data_start: int, file_size: int) -> Part:
    shown = repr(name[:80])
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in name):
        raise ValidationError(f"tensor name {shown} is empty, longer than {MAX_NAME} or has control characters")
    if name.startswith("__") and name.endswith("__"):
        raise ValidationError(f"tensor name {shown} is reserved (names like __header__ are the format's own parts)")
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ValidationError(f"tensor {shown} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise ValidationError(f"tensor {shown} has unknown dtype {str(dtype)[:20]!r} (known: {', '.join(DTYPE_BITS)})")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_count(d) for d in shape):
        raise ValidationError(
            f"tensor {shown} shape {_brief(shape)} must be a list of at most {MAX_DIMS} non-negative integers"
        )
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(x) for x in offsets):
        raise ValidationError(f"tensor {shown} data_offsets {_brief(offsets)} must be two non-negative integers")
    begin, end = offsets
    if begin > end or data_start + end > file_size:
        raise ValidationError(f"tensor {shown} bytes {begin}..{end} lie outside the file; the file is truncated")
    count = 1
    for d in shape:
        count *= d
    bits = count * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        raise ValidationError(f"tensor {shown} ({dtype}{_brief(shape)}) should take {bits / 8:g} bytes, not {end - begin}")
    return Part(name, data_start + begin, end - begin, dtype, list(shape))


class _Refused(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"header names {key[:80]!r} twice")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise _Refused(f"header holds {name}, which is not JSON")


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_DIM  # not bool, not float (1e400 is inf)


def _brief(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:120]


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def _max_depth(header: bytes) -> int:
    """How deep ``[``/``{`` nest in ``header`` (outside strings), without parsing it."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", header))
    depth = deepest = 0
    for c in brackets:
        if c in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest
