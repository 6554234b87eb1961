"""The typed contract between stages: what flows through ``ctx.artifacts``.

Steps talk to each other only through ``ctx.artifacts`` (a dict). This module
declares every key a standard plugin reads or writes, with the protocol its value
satisfies, so a plugin swapping one stage knows exactly what the next one expects::

    from llmos.artifacts import DATASET, MODEL, LINEAGE

    class MyStep:
        def run(self, ctx):
            ds = DATASET.require(ctx, "model.mine")      # a Dataset, or a one-line error
            MODEL.set(ctx, build(ds.vocab_size))
            LINEAGE.set(ctx, {"method": "mine", "settings": {}})

No torch here (the core stays light): the protocols name the methods and
attributes a stage uses, checked structurally. ``check_artifacts(ctx.artifacts)``
lists what does not satisfy its key's protocol (``llmos plugin test --run`` uses
it after every stage). DESIGN.md's artifact table is generated from :data:`KEYS`
(``python -m llmos.artifacts``; a test keeps it in sync).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypedDict, TypeVar, runtime_checkable

from llmos.errors import ValidationError

T = TypeVar("T")

# ---------------------------------------------------------------------------
# Protocols: what a value must offer (structural, checked by attribute presence)
# ---------------------------------------------------------------------------


@runtime_checkable
class Tokenizer(Protocol):
    """A tokenizer (the standard plugins use ``transformers.PreTrainedTokenizerFast``)."""

    def encode(self, text: str, *args: Any, **kwargs: Any) -> list[int]: ...

    def decode(self, ids: Any, *args: Any, **kwargs: Any) -> str: ...

    def save_pretrained(self, directory: str, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Dataset(Protocol):
    """A packed, tokenized corpus (llmos-data's ``PackedDataset``)."""

    vocab_size: int
    block_size: int
    corpus_sha256: str

    def split(self, name: str) -> Any:
        """``(n_blocks, block_size)`` token ids (a numpy array) for ``"train"`` or ``"validation"``."""
        ...

    def tokenizer(self) -> Tokenizer: ...


@runtime_checkable
class CausalLM(Protocol):
    """A causal language model: ``model(input_ids=...)`` returns an object with ``.logits``
    (a ``torch.nn.Module``; a ``transformers`` model for the standard plugins)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def eval(self) -> Any: ...

    def parameters(self, *args: Any, **kwargs: Any) -> Any: ...


@runtime_checkable
class Server(Protocol):
    """A server running in the background (llmos-serve's ``BackgroundServer``)."""

    url: str

    def stop(self) -> Any: ...


class LineageData(TypedDict, total=False):
    """Where the training data came from (one spelling for every plugin)."""

    path: str  # the dataset directory on this machine
    corpus_sha256: str
    vocab_size: int
    block_size: int


class Lineage(TypedDict, total=False):
    """What the next registered version records about how it was made."""

    method: str  # e.g. "train", "int8_dynamic", "distill", "export:onnx"
    settings: dict[str, Any]  # the step's validated config
    data: LineageData
    steps: int
    component: str  # the component that made it, "plugin:stage.name"
    best_trial: str  # grid search: the winning trial
    trials: list[dict[str, Any]]  # grid search: every trial's settings and metrics
    base: str  # an adapter's base version, "name:N" (optimizer.lora)
    lora: dict[str, Any]  # the adapter's LoRA settings (optimizer.lora)


LINEAGE_KEYS = frozenset(Lineage.__annotations__)
LINEAGE_DATA_KEYS = frozenset(LineageData.__annotations__)
_REF = re.compile(r"^[a-z0-9][a-z0-9_.-]*:[1-9][0-9]*$")


def _is_metrics(v: Any) -> bool:
    return isinstance(v, Mapping) and all(
        isinstance(k, str) and isinstance(x, (int, float)) and not isinstance(x, bool) for k, x in v.items()
    )


def _is_lineage(v: Any) -> bool:
    if not isinstance(v, Mapping) or not isinstance(v.get("method", ""), str):
        return False
    data = v.get("data", {})
    return isinstance(data, Mapping) and isinstance(v.get("settings", {}), Mapping)


def _lineage_problem(v: Any) -> str | None:
    if not _is_lineage(v):
        return 'must be a dict like {"method": str, "settings": dict, "data": dict}'
    unknown = sorted(set(v) - LINEAGE_KEYS)
    if unknown:
        return f"unknown lineage keys {unknown} (declared: {sorted(LINEAGE_KEYS)})"
    unknown = sorted(set(v.get("data") or {}) - LINEAGE_DATA_KEYS)
    if unknown:
        return f"unknown lineage data keys {unknown} (declared: {sorted(LINEAGE_DATA_KEYS)}; the dataset directory is 'path')"
    return None


# ---------------------------------------------------------------------------
# Typed keys
# ---------------------------------------------------------------------------


class Key(Generic[T]):
    """A typed ``ctx.artifacts`` key. ``KEY.get(ctx)``, ``KEY.set(ctx, v)``,
    ``KEY.require(ctx, who)``, ``KEY.pop(ctx)``; ``ctx`` may also be the dict itself."""

    def __init__(self, name: str, value: str, *, written_by: str, read_by: str = "",
                 check: Callable[[Any], bool] | type | None = None,
                 problem: Callable[[Any], str | None] | None = None) -> None:
        self.name, self.value, self.written_by, self.read_by = name, value, written_by, read_by
        self._check, self._problem = check, problem

    def __repr__(self) -> str:
        return f"Key({self.name!r})"

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def _dict(ctx: Any) -> dict[str, Any]:
        return ctx if isinstance(ctx, dict) else ctx.artifacts

    def get(self, ctx: Any, default: Any = None) -> T | None:
        return self._dict(ctx).get(self.name, default)

    def set(self, ctx: Any, value: T) -> None:
        self._dict(ctx)[self.name] = value

    def pop(self, ctx: Any) -> T | None:
        return self._dict(ctx).pop(self.name, None)

    def require(self, ctx: Any, who: str = "this step") -> T:
        """The value, or a one-line :class:`ValidationError` saying which stage provides it."""
        value = self._dict(ctx).get(self.name)
        if value is None:
            raise ValidationError(f"{who} needs ctx.artifacts[{self.name!r}] ({self.value.split(';')[0]}), "
                                  f"written by {self.written_by}: add such a stage before it")
        return value

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not satisfy this key's protocol (``None`` when it does)."""
        if self._problem is not None:
            return self._problem(value)
        if self._check is None:
            return None
        ok = isinstance(value, self._check) if isinstance(self._check, type) else self._check(value)
        if ok:
            return None
        if isinstance(self._check, type):
            missing = [a for a in _members(self._check) if not hasattr(value, a)]
            return f"a {type(value).__name__} is not a {self._check.__name__} (missing: {', '.join(missing)})"
        return f"a {type(value).__name__} does not satisfy: {self.value}"


def _members(proto: type) -> list[str]:
    names = [n for n in vars(proto) if not n.startswith("_") or n == "__call__"]
    names += list(getattr(proto, "__annotations__", {}))
    return sorted({n for n in names if n not in ("_is_protocol", "_is_runtime_protocol")})


def _is_ref(v: Any) -> bool:
    return isinstance(v, str) and bool(_REF.match(v))


DATASET: Key[Dataset] = Key(
    "dataset", "a Dataset: `vocab_size`, `block_size`, `corpus_sha256`, `split(name)` -> numpy array "
    "`(n_blocks, block_size)` of token ids for `\"train\"`/`\"validation\"`, `tokenizer()`",
    written_by="`data.corpus`", read_by="`model.llama`/`gpt2`, `optimizer.*`, `model.evaluate`, `compression.*`",
    check=Dataset)
TOKENIZER: Key[Tokenizer] = Key(
    "tokenizer", "a Tokenizer (`encode`, `decode`, `save_pretrained`): a `transformers.PreTrainedTokenizerFast`",
    written_by="`data.corpus`, `model.load`", read_by="`model.evaluate`, `model.register`, `deployment.*`",
    check=Tokenizer)
MODEL: Key[CausalLM] = Key(
    "model", "a CausalLM: `model(input_ids=...)` returns `.logits`; `eval()`, `parameters()` (a `torch.nn.Module`); "
    "may carry `llmos_saver` + `llmos_loader` (see below)",
    written_by="`model.llama`/`gpt2`, `model.load`, `optimizer.*`, `compression.*`",
    read_by="`optimizer.*`, `model.evaluate`, `model.register`, `compression.*`, `deployment.*`", check=CausalLM)
TEACHER: Key[CausalLM] = Key(
    "teacher", "a CausalLM used by distillation", written_by="`model.load` with `as = \"teacher\"`",
    read_by="`compression.distill`", check=CausalLM)
METRICS: Key[dict[str, float]] = Key(
    "metrics", "`dict[str, float]`: the latest evaluation (`val_loss`, `val_ppl`, `tokens_per_s`, `params`...); "
    "becomes the next registered version's metrics and the run's summary",
    written_by="`model.evaluate`, `optimizer.*`, `compression.*`", read_by="`model.register`, the runner",
    check=_is_metrics)
LINEAGE: Key[Lineage] = Key(
    "lineage", "a Lineage: `{\"method\", \"settings\", \"data\": {\"path\", \"corpus_sha256\", \"vocab_size\", "
    "\"block_size\"}, \"steps\", \"component\"}`, recorded by the next registration",
    written_by="`optimizer.*`, `compression.*`", read_by="the runner (`ctx.register_version`), `model.register`",
    problem=_lineage_problem)
MODEL_VERSION: Key[str] = Key(
    "model_version", "`\"name:N\"`: the last registered/loaded version (the parent of the next)",
    written_by="`model.register`, `model.load`", read_by="the runner (parents), `deployment.openai-server`",
    check=_is_ref)
TEACHER_VERSION: Key[str] = Key(
    "teacher_version", "`\"name:N\"` of the teacher, recorded in the distilled version's lineage",
    written_by="`llmos compress` (distill)", read_by="`compression.distill`", check=_is_ref)
SAMPLES: Key[list[dict[str, Any]]] = Key(
    "samples", "`list` of `{\"prompt\", \"text\"...}` sample generations", written_by="`model.evaluate`",
    check=lambda v: isinstance(v, list))
ONNX_VERSION: Key[str] = Key(
    "onnx_version", "`\"name:N\"` of the registered ONNX export", written_by="`deployment.onnx`", check=_is_ref)
EXPORT_PATH: Key[str] = Key(
    "export_path", "`str`: a file or directory a deployment step wrote",
    written_by="`deployment.export`, `deployment.*` of scaffolded plugins (`llmos plugin new`)",
    check=lambda v: isinstance(v, str))
SERVER: Key[Server] = Key(
    "server", "a Server (`url`, `stop()`) left running for later stages",
    written_by="`deployment.openai-server` with `block = false`", check=Server)
SERVER_URL: Key[str] = Key(
    "server_url", "`str`: the base URL of that server", written_by="`deployment.openai-server` with `block = false`",
    check=lambda v: isinstance(v, str))
PROMETHEUS_URL: Key[str] = Key(
    "prometheus_url", "`str`: the `/metrics` URL", written_by="`monitoring.prometheus`",
    check=lambda v: isinstance(v, str))
METRICS_PLOT: Key[str] = Key(
    "metrics_plot", "`str`: path of the PNG", written_by="`monitoring.plot`", check=lambda v: isinstance(v, str))
METRICS_JSONL: Key[str] = Key(
    "metrics_jsonl", "`str`: path of the JSON Lines file", written_by="`monitoring.jsonl`",
    check=lambda v: isinstance(v, str))
TEXT_LINES: Key[list[str]] = Key(
    "text_lines", "`list[str]`: lines of text (no standard stage reads it: a data step for them writes `dataset`)",
    written_by="the README's first plugin example",
    check=lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))

#: Every declared key, in table order.
KEYS: tuple[Key[Any], ...] = (DATASET, TOKENIZER, MODEL, TEACHER, METRICS, LINEAGE, MODEL_VERSION,
                              TEACHER_VERSION, SAMPLES, ONNX_VERSION, EXPORT_PATH, SERVER, SERVER_URL,
                              PROMETHEUS_URL, METRICS_PLOT, METRICS_JSONL, TEXT_LINES)
BY_NAME: dict[str, Key[Any]] = {k.name: k for k in KEYS}


def check_artifacts(artifacts: Mapping[str, Any], *, allow_undeclared: bool = True) -> list[str]:
    """Problems with ``artifacts``: a declared key whose value does not satisfy its
    protocol (and, with ``allow_undeclared=False``, keys this module does not declare)."""
    problems = []
    for name, value in artifacts.items():
        key = BY_NAME.get(name)
        if key is None:
            if not allow_undeclared:
                problems.append(f"ctx.artifacts[{name!r}] is not a declared artifact key (see llmos.artifacts)")
            continue
        why = key.problem(value)
        if why:
            problems.append(f"ctx.artifacts[{name!r}]: {why}")
    return problems


def render_table() -> str:
    """The Markdown table of DESIGN.md's "Artifact conventions" section."""
    lines = ["| key | value | written by | read by |", "|---|---|---|---|"]
    for k in KEYS:
        lines.append(f"| `{k.name}` (`{_const(k)}`) | {k.value} | {k.written_by} | {k.read_by or '-'} |")
    return "\n".join(lines) + "\n"


def _const(key: Key[Any]) -> str:
    return next(n for n, v in globals().items() if v is key)


if __name__ == "__main__":
    print(render_table(), end="")
