"""Progress display for runs: a live rich bar on a terminal, plain lines otherwise.

``Display.task(total, description, unit)`` is what :meth:`RunContext.progress`
returns: a context manager with ``update(advance=1, **fields)``. Fields such as
``loss`` and ``tokens_per_s`` are shown next to the bar. Updates are cheap (a
lock and a few assignments); the screen is redrawn by rich's own thread at
most 8 times a second, and plain lines are printed at most every few seconds.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


def _fmt_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if key == "tokens_per_s":
            parts.append(f"{_si(float(value))} tok/s")
        elif isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value}")
    return " · ".join(parts)


def _si(v: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Display:
    """One progress display for a whole run.

    :param live: rich live bars (default: when ``stream`` is a terminal).
    :param stream: where plain lines and the bars go (default: stderr).
    :param interval: seconds between plain progress lines.
    :param quiet: show nothing.
    """

    def __init__(self, live: bool | None = None, stream: TextIO | None = None, interval: float = 5.0,
                 quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (self.stream.isatty() if live is None else live) and not quiet
        self.interval = interval
        self._progress: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> Display:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                refresh_per_second=8,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def print(self, text: str) -> None:
        """A message above the bars (or a plain line)."""
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            with self._lock:
                self.stream.write(text + "\n")
                self.stream.flush()

    def task(self, total: int | None = None, description: str = "", unit: str = "it") -> Any:
        if self.quiet:
            from llmos.context import NullProgress

            return NullProgress()
        if self._progress is not None:
            return _RichTask(self._progress, total, description)
        return _PlainTask(self, total, description, unit)


class _RichTask:
    def __init__(self, progress: Any, total: int | None, description: str) -> None:
        self.progress = progress
        self.id = progress.add_task(description, total=total, info="")

    def __enter__(self) -> _RichTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, advance: float = 1, **fields: Any) -> None:
        if fields:
            self.progress.update(self.id, advance=advance, info=_fmt_fields(fields))
        else:
            self.progress.advance(self.id, advance)

    def close(self) -> None:
        self.progress.stop_task(self.id)


class _PlainTask:
    def __init__(self, display: Display, total: int | None, description: str, unit: str) -> None:
        self.display, self.total, self.description, self.unit = display, total, description, unit
        self.done = 0.0
        self.fields: dict[str, Any] = {}
        self.t0 = self.last = time.monotonic()
        self.start_done = 0.0
        self._first = True
        self._closed = False
        self._printed: float | None = None

    def __enter__(self) -> _PlainTask:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, advance: float = 1, **fields: Any) -> None:
        if self._first:  # an initial jump (a resumed loop) does not count towards the rate
            self._first = False
            if not fields and advance and self.done == 0:
                self.done = self.start_done = float(advance)
                return
        self.done += advance
        if fields:
            self.fields = fields
        now = time.monotonic()
        if now - self.last >= self.display.interval:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        self._printed = self.done
        elapsed = now - self.t0
        text = f"[{self.description}] {self.done:g}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"
            rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0
            if rate > 0 and self.done < self.total:
                text += f" eta {_hms((self.total - self.done) / rate)}"
        else:
            text += f" {self.unit}"
        if self.fields:
            text += " · " + _fmt_fields(self.fields)
        text += f" · {_hms(elapsed)}"
        self.display.print(text)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._printed != self.done:
                self._line(time.monotonic())
