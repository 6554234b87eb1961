"""A cache of the ``llmos`` entry-point group.

Scanning every installed distribution's metadata costs ~60 ms with the ~200
distributions a torch/transformers environment has — more than the rest of
``llmos --help`` together. The scan result is cached in the llmos home, keyed by
the modification times of the ``sys.path`` directories: installing, upgrading
or removing any distribution adds or removes a ``*.dist-info`` directory there,
which changes the key, so a stale cache is never used. The file holds the scans
of the last few keys (:data:`MAX_KEYS`), so the ``llmos`` script and a ``python``
process using the API — different ``sys.path[0]``, different keys — do not evict
each other's scan and rescan every other time.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


class EntryPointRecord:
    """One entry point: ``name = value`` from distribution ``dist`` ``version``.
    (A plain class, not a dataclass: building dataclasses costs start-up time.)"""

    __slots__ = ("name", "value", "dist", "version")

    def __init__(self, name: str, value: str, dist: str | None, version: str | None) -> None:
        self.name, self.value, self.dist, self.version = name, value, dist, version

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "value": self.value, "dist": self.dist, "version": self.version}

    def load(self) -> object:
        from llmos.components import import_object

        module, _, attr = self.value.partition(":")
        if not attr:
            import importlib

            return importlib.import_module(module)
        return import_object(self.value)


def _key() -> str:
    parts = [sys.executable]
    for i, p in enumerate(sys.path):
        if i == 0:
            # the script's directory or the cwd: its mtime changes all the time (a
            # busy /tmp), so key on the distributions it holds instead
            try:
                names = sorted(e.name for e in os.scandir(p or ".") if e.name.endswith((".dist-info", ".egg-info")))
            except OSError:
                continue
            parts.append(f"{p}={','.join(names)}")
            continue
        try:
            parts.append(f"{p}={os.stat(p).st_mtime_ns}")
        except OSError:
            continue
    return "|".join(parts)


def _scan(group: str) -> list[EntryPointRecord]:
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        out.append(
            EntryPointRecord(
                ep.name, ep.value, dist.name if dist is not None else None, dist.version if dist is not None else None
            )
        )
    return out


#: how many ``sys.path`` set-ups one cache file remembers: the ``llmos`` script,
#: ``python -m llmos``, ``python -c`` / scripts (the Python API) and a few others each
#: have their own ``sys.path[0]``, and one entry would make them evict each other
MAX_KEYS = 8


def entry_points(group: str, cache_dir: Path | None) -> list[EntryPointRecord]:
    """The entry points of ``group``, from the cache when it is still valid."""
    if cache_dir is None or os.environ.get("LLMOS_NO_EP_CACHE"):
        return _scan(group)
    path = cache_dir / f"entry-points-{group}.json"
    key = _key()
    keys: dict[str, list[dict]] = {}
    try:
        data = json.loads(path.read_text())
        keys = {k: v for k, v in data["keys"].items() if isinstance(k, str) and isinstance(v, list)}
        if key in keys:
            return [EntryPointRecord(**r) for r in keys[key]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        keys = {}
    records = _scan(group)
    keys.pop(key, None)
    keys[key] = [r.to_dict() for r in records]  # newest last; the oldest go first
    keys = dict(list(keys.items())[-MAX_KEYS:])
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"keys": keys}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs speed
    return records
