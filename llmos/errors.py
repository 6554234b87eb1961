"""Error types. Every user-facing error is an :class:`LlmosError`: the CLI prints
its message as one line (``Error: ...``) and exits non-zero, with no traceback.

Messages say what is wrong *and* how to fix it.
"""

from __future__ import annotations


class LlmosError(Exception):
    """Base class of every error llmos reports to a user.

    :param message: one line: what is wrong, and how to fix it.
    :param exit_code: process exit status the CLI uses (default 1).
    """

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotFoundError(LlmosError):
    """A named thing (model, version, alias, plugin, component, run) does not exist."""

    exit_code = 2


class ValidationError(LlmosError):
    """Input (a name, a config, a file) is not valid."""

    exit_code = 2


class ConflictError(LlmosError):
    """The request conflicts with existing state (duplicate, immutable, ambiguous)."""

    exit_code = 3


class PluginError(LlmosError):
    """A plugin failed to load, is incompatible, or raised inside a hook."""

    exit_code = 4


def exc_line(exc: BaseException | None) -> str:
    """An exception as one line: an :class:`LlmosError`'s own message, else
    ``"Type: message"`` (newlines joined, at most 300 characters); ``""`` for ``None``.
    The one formatter of exceptions in llmos."""
    if exc is None:
        return ""
    if isinstance(exc, LlmosError):
        return exc.message
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
