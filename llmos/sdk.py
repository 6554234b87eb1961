"""The public SDK: everything a plugin may import from llmos, in one module.

Plugins import ``hookimpl`` from :mod:`llmos` and everything else from here
(``llmos.testing`` in their tests). Every other ``llmos.*`` module is the core's
own and may change without notice; a test fails if a standard plugin imports one.

Contents:

- **errors** — :class:`LlmosError` (the CLI prints its message as one line and
  exits non-zero), :class:`ValidationError`, :class:`NotFoundError`,
  :class:`ConflictError`, :class:`PluginError`; :func:`exc_line`.
- **the run context** — :class:`RunContext` (``RunContext.standalone(tmp_path)`` for
  tests), :class:`NullProgress`.
- **the artifact contract** — the typed keys (``MODEL``, ``DATASET``...) and
  protocols (``CausalLM``, ``Dataset``...) of :mod:`llmos.artifacts`.
- **plugins and components** — :func:`get_manager`, :class:`PluginManager`, the
  ``STAGES`` and their provider hooks (``STAGE_HOOKS``), :class:`ComponentRef`,
  :func:`import_object`, :func:`format_validation_error`, :func:`jsonable`;
  :func:`check_plugin` / :func:`check_outputs` (the plugin contract, for tools that
  test plugins).
- **the registry** — :func:`open_registry` (the installed registry plugin's, see
  ``llmos_open_registry``; model names and references are that plugin's: ``llmos_registry``).
- **CLI output** — :func:`echo_json`, :func:`echo_table`, ``json_option``,
  :func:`make_console`, :func:`progress_bar`; :func:`parse_key_values`
  (``--set KEY=VALUE`` options), :func:`parse_value`.
- **files** — ``PICKLE_SUFFIXES``, :func:`fsync_dir`, :func:`home`.
- **runs** — :class:`MetricBuffer` (batched metric rows of a run), :func:`flatten_config`,
  :func:`new_run_id`.
- **secrets** — :func:`redact`, :func:`redact_text`, :func:`redact_argv`; **liveness** — :class:`Heartbeat`; **devices** — :func:`resolve_device`, :func:`autocast`...

Importing this module is light (no torch, numpy, click or rich): the heavier
names are imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmos import API_VERSION, hookimpl
from llmos.artifacts import (
    BY_NAME,
    DATASET,
    EXPORT_PATH,
    KEYS,
    LINEAGE,
    METRICS,
    METRICS_JSONL,
    METRICS_PLOT,
    MODEL,
    MODEL_VERSION,
    ONNX_VERSION,
    PROMETHEUS_URL,
    SAMPLES,
    SERVER,
    SERVER_URL,
    TEACHER,
    TEACHER_VERSION,
    TEXT_LINES,
    TOKENIZER,
    CausalLM,
    Dataset,
    Key,
    Lineage,
    LineageData,
    Server,
    Tokenizer,
    check_artifacts,
)
from llmos.components import STAGE_HOOKS, STAGES, ComponentRef, format_validation_error, import_object, jsonable
from llmos.config import home
from llmos.context import NullProgress, RunContext
from llmos.errors import ConflictError, LlmosError, NotFoundError, PluginError, ValidationError, exc_line
from llmos.files import PICKLE_SUFFIXES, fsync_dir
from llmos.plugins import PluginManager, get_manager

# names imported on first use: "module:attribute"
_LAZY = {
    "open_registry": "llmos.registry:open_registry",
    "check_plugin": "llmos.contract:check_plugin",
    "check_outputs": "llmos.contract:check_outputs",
    "echo_json": "llmos.cli._output:echo_json",
    "echo_table": "llmos.cli._output:echo_table",
    "json_option": "llmos.cli._output:json_option",
    "make_console": "llmos.cli._output:make_console",
    "MetricBuffer": "llmos.runs:MetricBuffer",
    "flatten_config": "llmos.runs:flatten_config",
    "new_run_id": "llmos.runs:new_run_id",
    "redact": "llmos.redact:redact",
    "redact_argv": "llmos.redact:redact_argv",
    "redact_text": "llmos.redact:redact_text",
    "Heartbeat": "llmos.liveness:Heartbeat",
    "autocast": "llmos.devices:autocast",
    "autocast_dtype": "llmos.devices:autocast_dtype",
    "check_device_name": "llmos.devices:check_device_name",
    "PRECISIONS": "llmos.devices:PRECISIONS",
    "place_for_inference": "llmos.devices:place_for_inference",
    "precision_name": "llmos.devices:precision_name",
    "resolve_device": "llmos.devices:resolve_device",
}


def __getattr__(name: str) -> Any:
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'llmos.sdk' has no attribute {name!r}")
    value = import_object(spec)
    globals()[name] = value
    return value


# ---------------------------------------------------------------------------
# KEY=VALUE options
# ---------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value as a TOML scalar (``3``, ``1e-3``, ``true``, ``"x"``, ``[1, 2]``);
    anything TOML cannot read is taken as a bare string."""
    import tomllib  # here: the SDK is imported by every plugin's command module

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_key_value(item: str, *, what: str = "setting", option: str = "--set",
                    example: str = "key=value") -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``; otherwise a one-line
    :class:`ValidationError` naming the option and an example."""
    key, sep, value = str(item).partition("=")
    if not sep or not key.strip():
        raise ValidationError(f"bad {what} {item!r}: write KEY=VALUE, e.g. {option} {example}")
    return key.strip(), value.strip()


def parse_key_values(items: Iterable[str], *, what: str = "setting", option: str = "--set",
                     example: str = "key=value", typed: bool = True) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` options as a dict (values parsed by :func:`parse_value`
    when ``typed``, else kept as strings)."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = split_key_value(item, what=what, option=option, example=example)
        out[key] = parse_value(value) if typed else value
    return out


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


def progress_bar(total: int | None, description: str, unit: str = "it") -> Any:
    """A terminal progress bar with the :meth:`RunContext.progress` interface
    (``with bar: bar.update(n, loss=...)``), for commands run outside a pipeline
    (inside one, use ``ctx.progress(...)``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class _Bar:
        def __init__(self) -> None:
            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=True)
            self.task = self.p.add_task(description, total=total, info="")

        def __enter__(self) -> _Bar:
            self.p.start()
            return self

        def __exit__(self, *exc: Any) -> None:
            self.p.stop()

        def update(self, advance: float = 1, **fields: Any) -> None:
            info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            self.p.update(self.task, advance=advance, info=info)

        def close(self) -> None:
            self.p.stop()

    return _Bar()


def find_extension(kind: str, name: str) -> Any:
    """The ``kind`` extension called ``name`` (or ``plugin:name``) from the process's plugin
    manager; a ``ValueError`` listing the available names otherwise, which pydantic reports
    at the setting that named it (so ``llmos run --check`` locates it)."""
    try:
        return get_manager().get_extension(kind, name)
    except LlmosError as exc:
        raise ValueError(exc.message) from None


def validate_settings(ext: Any, values: dict[str, Any], *, prefix: str = "settings") -> Any:
    """``values`` validated by ``ext``'s pydantic config (a plain dict when it declares
    none); a one-line ``ValueError`` located under ``prefix`` otherwise."""
    if ext.config is None:
        return dict(values)
    import pydantic

    try:
        return ext.config.model_validate(dict(values))
    except pydantic.ValidationError as exc:
        raise ValueError(format_validation_error(exc, prefix=prefix)) from None


__all__ = [
    "API_VERSION", "BY_NAME", "DATASET", "EXPORT_PATH", "KEYS", "LINEAGE", "METRICS", "METRICS_JSONL",
    "METRICS_PLOT", "MODEL", "MODEL_VERSION", "ONNX_VERSION", "PICKLE_SUFFIXES", "PROMETHEUS_URL", "SAMPLES",
    "SERVER", "SERVER_URL", "TEACHER", "TEACHER_VERSION", "TEXT_LINES", "TOKENIZER", "CausalLM", "ConflictError",
    "Dataset", "Key", "Lineage", "LineageData", "LlmosError", "NotFoundError", "NullProgress", "PluginError",
    "RunContext", "Server", "Tokenizer", "ValidationError", "check_artifacts", "exc_line",
    "find_extension", "format_validation_error", "fsync_dir", "get_manager", "home", "hookimpl", "import_object", "jsonable",
    "parse_key_values", "parse_value", "progress_bar", "split_key_value", "validate_settings", *sorted(_LAZY),
]
