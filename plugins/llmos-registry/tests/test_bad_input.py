"""Bad input: every mistake is one clear line (an LlmosError) and writes nothing."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_testtools import make_model, tensor, write_safetensors

from llmos.sdk import LlmosError, NotFoundError, ValidationError


def snapshot(reg: Any) -> tuple[Any, ...]:
    """Everything a failed call must leave unchanged: row counts and the blob files."""
    info = reg.info()
    blobs = sorted(d for d, _ in reg.blobs.iter_digests())
    temps = list(reg.blobs.iter_temp())
    checkouts = sorted(str(p) for p in (reg.home / "checkouts").rglob("*")) if (reg.home / "checkouts").exists() else []
    counts = {k: v for k, v in info["counts"].items() if k != "events"}
    return counts, info["counts"]["events"], blobs, temps, checkouts


def _corrupt_files(tmp: Path) -> dict[str, Path]:
    out = {}
    good = make_model(tmp / "good", [1, 2])
    data = (good / "model.safetensors").read_bytes()

    def variant(name: str, content: bytes) -> Path:
        d = make_model(tmp / name, [1])
        (d / "model.safetensors").write_bytes(content)
        return d

    out["truncated"] = variant("truncated", data[:-10])
    out["tiny"] = variant("tiny", b"\x01\x02")
    out["huge-header"] = variant("huge", struct.pack("<Q", 1 << 40) + b"{}")
    out["not-json"] = variant("notjson", struct.pack("<Q", 4) + b"nope")
    out["not-object"] = variant("list", struct.pack("<Q", 2) + b"[]")
    bad_shape = tmp / "shape"
    make_model(bad_shape, [1])
    write_safetensors(bad_shape / "model.safetensors", {"w": ("F32", [3], b"\0" * 8)})
    out["wrong-size"] = bad_shape
    no_offsets = tmp / "nooff"
    make_model(no_offsets, [1])
    (no_offsets / "model.safetensors").write_bytes(struct.pack("<Q", 18) + b'{"w":{"dtype":"F"}}'[:18])
    out["missing-offsets"] = no_offsets
    return out


CASES: list[tuple[str, type[LlmosError], str, Callable[[Any, Path, dict[str, Path]], Any]]] = [
    ("name with space", ValidationError, "invalid model name", lambda r, t, c: r.register_version("a b", t / "good")),
    ("name with colon", ValidationError, "invalid model name", lambda r, t, c: r.register_version("a:1", t / "good")),
    ("empty name", ValidationError, "invalid model name", lambda r, t, c: r.register_version("", t / "good")),
    ("missing path", ValidationError, "does not exist", lambda r, t, c: r.register_version("m", t / "nope")),
    ("empty dir", ValidationError, "contains no files", lambda r, t, c: r.register_version("m", t / "empty")),
    ("pickle file", ValidationError, "convert it to safetensors", lambda r, t, c: r.register_version("m", t / "pickled")),
    ("single .pt file", ValidationError, "never loads", lambda r, t, c: r.register_version("m", t / "w.pt")),
    ("single json file", ValidationError, "not .safetensors", lambda r, t, c: r.register_version("m", t / "good" / "config.json")),
    ("unknown parent", NotFoundError, "no model named 'ghost'", lambda r, t, c: r.register_version("m", t / "good", parents=["ghost:1"])),
    ("deleted parent", NotFoundError, "was deleted", lambda r, t, c: r.register_version("m", t / "good", parents=["base:2"])),
    ("bad parent ref", ValidationError, "invalid model reference", lambda r, t, c: r.register_version("m", t / "good", parents=["base:x"])),
    ("bad tag key", ValidationError, "invalid tag key", lambda r, t, c: r.register_version("m", t / "good", tags={"a b": "1"})),
    ("nan metric", ValidationError, "must be finite", lambda r, t, c: r.register_version("m", t / "good", metrics={"x": float("nan")})),
    ("text metric", ValidationError, "must be a number", lambda r, t, c: r.register_version("m", t / "good", metrics={"x": "high"})),
    ("reserved alias", ValidationError, "reserved", lambda r, t, c: r.register_version("m", t / "good", aliases=["latest"])),
    ("lineage not json", ValidationError, "JSON", lambda r, t, c: r.register_version("m", t / "good", lineage={"x": object()})),
    ("unknown run", NotFoundError, "run 'r0'", lambda r, t, c: r.register_version("m", t / "good", run_id="r0")),
    ("unknown model ref", NotFoundError, "no model named 'ghost'", lambda r, t, c: r.resolve("ghost")),
    ("unknown version", NotFoundError, "no version 9", lambda r, t, c: r.resolve("base:9")),
    ("unknown alias", NotFoundError, "no alias 'prod'", lambda r, t, c: r.resolve("base@prod")),
    ("bad ref", ValidationError, "invalid model reference", lambda r, t, c: r.resolve("base:0")),
    ("alias on deleted", NotFoundError, "was deleted", lambda r, t, c: r.set_alias("base", "prod", 2)),
    ("alias bad version", ValidationError, "invalid version", lambda r, t, c: r.set_alias("base", "prod", "two")),
    ("remove unknown alias", NotFoundError, "no alias", lambda r, t, c: r.remove_alias("base", "prod")),
    ("delete deleted", NotFoundError, "was deleted", lambda r, t, c: r.delete("base:2")),
    ("checkout deleted", NotFoundError, "was deleted", lambda r, t, c: r.checkout("base:2")),
    ("diff unknown", NotFoundError, "no version 5", lambda r, t, c: r.diff("base:1", "base:5")),
    ("tag unknown", NotFoundError, "no model", lambda r, t, c: r.set_tags("ghost", {"a": "b"})),
]
CASES += [
    (f"corrupt safetensors: {kind}", ValidationError, "not a valid safetensors file",
     lambda r, t, c, kind=kind: r.register_version("m", c[kind]))
    for kind in ("truncated", "tiny", "huge-header", "not-json", "not-object", "wrong-size", "missing-offsets")
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[tuple[Any, Path, dict[str, Path]]]:
    """One registry for all the cases (none of them may change it): base:1, base:2 deleted."""
    import shutil

    from llmos.plugins import PluginManager, set_manager
    from llmos_registry import open_registry
    from llmos_registry.db import dispose_engines

    home = tmp_path_factory.mktemp("bad-input-home")
    tmp = tmp_path_factory.mktemp("bad-input-files")
    shutil.copyfile(sqlite_template, home / "llmos.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMOS_HOME", str(home))
        mp.setenv("LLMOS_DATABASE_URL", f"sqlite:///{home / 'llmos.db'}")
        mp.setenv("LLMOS_PLUGINS", "llmos-registry")
        previous = set_manager(PluginManager(load_entrypoints=False))
        try:
            reg = open_registry()
            corrupt = _corrupt_files(tmp)
            (tmp / "empty").mkdir()
            pickled = make_model(tmp / "pickled", [1])
            (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
            (tmp / "w.pt").write_bytes(b"x")
            reg.register_version("base", tmp / "good")
            reg.register_version("base", tmp / "good")
            reg.delete("base:2")
            yield reg, tmp, corrupt
        finally:
            set_manager(previous)
            dispose_engines()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_writes_nothing(prepared: Any, case: Any) -> None:
    reg, tmp, corrupt = prepared
    _, error, text, call = case
    before = snapshot(reg)
    with pytest.raises(error) as excinfo:
        call(reg, tmp, corrupt)
    message = excinfo.value.message
    assert text in message
    assert "\n" not in message and len(message) < 400
    assert snapshot(reg) == before


def test_corrupt_safetensors_detected_before_any_blob(sqlite_reg: Any, tmp_path: Path) -> None:
    # a good file first, a corrupt one second (sorted order): the good one's blobs must not be written
    d = make_model(tmp_path / "m", [1, 2])
    write_safetensors(d / "a.safetensors", {"x": tensor(3)})
    (d / "z.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{broken}")
    with pytest.raises(ValidationError, match="z.safetensors"):
        sqlite_reg.register_version("m", d)
    assert list(sqlite_reg.blobs.iter_digests()) == []
