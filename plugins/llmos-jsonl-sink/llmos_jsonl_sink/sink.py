"""The JSON Lines writer behind the hooks (one per process: :data:`SINK`)."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field
from llmos.sdk import METRICS_JSONL


class JsonlConfig(BaseModel):
    """``monitoring.jsonl``: where this run's records go."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field("metrics.jsonl", description="file for this run's records; relative paths are "
                      "inside the run's workdir")


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    # JSON has no NaN/Infinity: write null so every line parses with any JSON reader
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[str(k)] = None
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[str(k)] = v
        else:
            out[str(k)] = str(v)
    return out


_RUN_IN_SOURCE = re.compile(r"^(?:run|system):([^:]+)")


class JsonlSink:
    """Keeps one open file per destination; every write is one flushed line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Path, IO[str]] = {}
        self._run_paths: dict[str, Path] = {}

    # -- destinations ----------------------------------------------------------------

    @staticmethod
    def _global_path() -> Path | None:
        env = os.environ.get("LLMOS_JSONL_PATH")
        return Path(env).expanduser() if env else None

    def _other_path(self, source: str) -> Path:
        from llmos.sdk import home

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", source.split(":", 1)[0]) or "metrics"
        return home() / "jsonl" / f"{safe}-{os.getpid()}.jsonl"

    def path_for_run(self, run_id: Any, workdir: Any = None) -> Path:
        g = self._global_path()
        if g is not None:
            return g
        key = str(run_id)
        if key not in self._run_paths:
            base = Path(workdir) if workdir is not None else None
            self._run_paths[key] = (base / "metrics.jsonl") if base else self._other_path(f"run-{key}")
        return self._run_paths[key]

    def set_run_path(self, ctx: Any, path: str | Path) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = Path(ctx.workdir) / p
        with self._lock:
            old = self._run_paths.get(str(ctx.run_id))
            self._run_paths[str(ctx.run_id)] = p
            if old is not None and old != p and old in self._files:
                self._files.pop(old).close()
        return p

    # -- writing ---------------------------------------------------------------------

    def _write(self, path: Path, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        with self._lock:
            fh = self._files.get(path)
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self._files[path] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            fh.write(line)
            fh.flush()

    def run_started(self, ctx: Any) -> None:
        self._write(self.path_for_run(ctx.run_id, ctx.workdir),
                    {"event": "run_start", "ts": time.time(), "run_id": ctx.run_id,
                     "pipeline": getattr(ctx.spec, "name", None)})

    def run_ended(self, ctx: Any, status: str) -> None:
        path = self.path_for_run(ctx.run_id, ctx.workdir)
        self._write(path, {"event": "run_end", "ts": time.time(), "run_id": ctx.run_id, "status": status})
        with self._lock:
            # close the file but remember where the run's records go: a sampler's last
            # sample may arrive after this (hooks run in plugin-name order)
            if self._global_path() is None and path in self._files:
                self._files.pop(path).close()

    def write_run(self, ctx: Any, event: str, step: int | None, metrics: dict[str, float]) -> None:
        self._write(self.path_for_run(ctx.run_id, getattr(ctx, "workdir", None)),
                    {"event": event, "ts": time.time(), "run_id": ctx.run_id, "step": step,
                     "metrics": _clean(metrics)})

    def write_source(self, source: str, step: int | None, metrics: dict[str, float]) -> None:
        m = _RUN_IN_SOURCE.match(source)
        run_id = m.group(1) if m else None
        if run_id is not None and (run_id in self._run_paths or self._global_path() is not None):
            path = self.path_for_run(run_id)
        else:
            path = self._global_path() or self._other_path(source)
        self._write(path, {"event": "metrics", "ts": time.time(), "source": source, "run_id": run_id,
                           "step": step, "metrics": _clean(metrics)})

    def write_request(self, request: dict[str, Any], metrics: dict[str, float]) -> None:
        self._write(self._global_path() or self._other_path("serve"),
                    {"event": "request", "ts": time.time(), "request": _clean(dict(request)),
                     "metrics": _clean(metrics)})

    def close(self) -> None:
        with self._lock:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


SINK = JsonlSink()


class JsonlStep:
    """Pipeline step ``monitoring.jsonl``: send the rest of this run's records to ``path``."""

    def __init__(self, config: JsonlConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> None:
        path = SINK.set_run_path(ctx, self.config.path)
        METRICS_JSONL.set(ctx, str(path))
        return None
