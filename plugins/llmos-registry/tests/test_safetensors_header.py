"""Property tests of the safetensors header validator (``safetensors_io.parse_header``):
valid headers give parts that tile the file; anything else is a ``ValidationError``,
never another exception; and what it accepts, the safetensors library loads too."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmos.sdk import ValidationError
from llmos_registry import safetensors_io as sio

COMMON = ["F32", "F16", "BF16", "I64", "I32", "U8", "I8", "BOOL", "F64", "I16", "U16"]

tensor_spec = st.tuples(
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_categories=("Cc",)), min_size=1, max_size=12),
    st.sampled_from(COMMON),
    st.lists(st.integers(0, 4), max_size=3),
)


def build(specs: list[tuple[str, str, list[int]]], gap: int = 0) -> tuple[bytes, int, dict]:
    header: dict = {}
    offset = 0
    for name, dtype, shape in specs:
        if name in header or (name.startswith("__") and name.endswith("__")):
            continue
        count = 1
        for d in shape:
            count *= d
        size = count * sio.DTYPE_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size + gap
    raw = json.dumps(header).encode()
    return raw, 8 + len(raw) + offset, header


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tensor_spec, max_size=8), st.integers(0, 3))
def test_valid_headers_tile_the_file(specs: list, gap: int) -> None:
    raw, size, header = build(specs, gap)
    parts = sio.parse_header(raw, size)
    assert parts[0].name == sio.HEADER and parts[0].size == 8 + len(raw)
    pos = 0
    for p in parts:
        assert p.offset == pos and p.size >= 0
        pos += p.size
    assert pos == size
    tensors = {p.name: p for p in parts if p.name not in (sio.HEADER, sio.GAP)}
    assert set(tensors) == set(header)
    for name, info in header.items():
        assert tensors[name].dtype == info["dtype"] and tensors[name].shape == info["shape"]
        assert tensors[name].offset == 8 + len(raw) + info["data_offsets"][0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
field_values = st.one_of(json_values, st.sampled_from(COMMON + ["F33", "f32", ""]),
                         st.lists(st.integers(-3, 2**65), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(tensor_spec, min_size=1, max_size=4), st.data())
def test_any_mutation_is_accepted_consistently_or_refused_in_one_line(specs: list, data: st.DataObject) -> None:
    raw, size, header = build(specs)
    if not header:
        return
    name = data.draw(st.sampled_from(sorted(header)))
    key = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra", "__name__"]))
    if key == "__name__":
        header[data.draw(st.sampled_from(["__header__", "__gap__", "__x__", ""]))] = header.pop(name)
    else:
        header[name][key] = data.draw(field_values)
    raw = json.dumps(header).encode()
    size = data.draw(st.integers(8 + len(raw), 8 + len(raw) + 200))
    try:
        parts = sio.parse_header(raw, size)
    except ValidationError as exc:
        assert "\n" not in exc.message
        return
    # accepted: every tensor is within the file, sized as dtype x shape, known dtype
    for p in parts:
        assert 0 <= p.offset and p.offset + p.size <= size
        if p.name not in (sio.HEADER, sio.GAP):
            assert p.dtype in sio.DTYPE_BITS and all(type(d) is int and d >= 0 for d in p.shape)
            assert not (p.name.startswith("__") and p.name.endswith("__"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_arbitrary_headers_never_raise_anything_else(raw: bytes) -> None:
    try:
        sio.parse_header(raw, 8 + len(raw) + 64)
    except ValidationError as exc:
        assert "\n" not in exc.message


@settings(max_examples=150, deadline=None)
@given(st.lists(tensor_spec, max_size=6), st.data())
def test_what_it_accepts_the_safetensors_library_loads(specs: list, data: st.DataObject) -> None:
    """Differential check against the reference implementation (for gap-free files,
    which is all safetensors writes)."""
    from safetensors import deserialize

    raw, size, header = build(specs)
    if header and data.draw(st.booleans()):  # sometimes break one field
        name = data.draw(st.sampled_from(sorted(header)))
        header[name]["shape"] = data.draw(st.lists(st.integers(-1, 5), max_size=3))
        raw = json.dumps(header).encode()
        size = 8 + len(raw) + sum(i["data_offsets"][1] - i["data_offsets"][0] for i in header.values())
    raw += b" " * (-len(raw) % 8)
    blob = struct.pack("<Q", len(raw)) + raw
    blob += bytes(max(0, size - len(blob)))
    try:
        parts = sio.parse_header(raw, len(blob))
    except ValidationError:
        return
    if any(p.name == sio.GAP for p in parts):
        return
    loaded = dict(deserialize(blob))
    assert set(loaded) == {p.name for p in parts if p.name != sio.HEADER}
