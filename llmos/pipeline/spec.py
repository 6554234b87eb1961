"""Pipeline files: TOML validated by pydantic, every component resolved up front.

A pipeline file::

    [pipeline]
    name = "quickstart"      # registry model name the versions are registered under
    seed = 1234
    description = "..."

    [[stages]]
    id = "data"              # unique; default: the component name ("corpus")
    use = "data.corpus"      # [plugin:]stage.component
    [stages.config]
    vocab_size = 2048

:func:`load_pipeline` reads it, applies ``--set`` overrides, validates the
structure, resolves every ``use`` to a component and validates every stage's
config against the component's config model — and reports *every* problem with
its location (``stages[2].config.lr: Input should be a valid number``) in one
:class:`PipelineError`, before any work starts.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError as PydanticError, field_validator

from llmos.components import Component, ComponentRef
from llmos.errors import LlmosError, ValidationError
from llmos.sdk import parse_value  # noqa: F401 - re-exported: llmos.pipeline.spec.parse_value

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class PipelineError(ValidationError):
    """A pipeline file is invalid; ``errors`` lists every problem as ``location: message``."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source, self.errors = source, list(errors)
        n = len(self.errors)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''}: " + "; ".join(self.errors))


class PipelineMeta(BaseModel):
    """The ``[pipeline]`` table."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME_PATTERN, description="Registry model name versions are registered under.")
    seed: int = Field(0, description="Seed of the run; steps derive theirs from it.")
    description: str = Field("", description="What the pipeline does.")


class StageSpec(BaseModel):
    """One ``[[stages]]`` entry (before its component is resolved)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, pattern=ID_PATTERN, description="Unique id; default: the component name.")
    use: str = Field(..., description="Component reference [plugin:]stage.name, e.g. model.llama.")
    config: dict[str, Any] = Field(default_factory=dict, description="The component's settings.")

    @field_validator("use")
    @classmethod
    def _use(cls, v: str) -> str:
        try:
            ComponentRef.parse(v)
        except LlmosError as exc:
            raise ValueError(exc.message) from None
        return v.strip()

    @property
    def stage_id(self) -> str:
        return self.id or default_id(self.use)


class PipelineFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    pipeline: PipelineMeta
    stages: list[StageSpec] = Field(..., min_length=1)


def default_id(use: str) -> str:
    """``"llmos-models:model.llama"`` → ``"llama"``."""
    return use.strip().rsplit(".", 1)[-1]


@dataclass
class Stage:
    """A resolved stage: what hooks see as ``stage`` (``id``, ``use``, ``config``)."""

    index: int
    id: str
    use: str
    config: Any  # the validated pydantic config (or None)
    raw_config: dict[str, Any]
    component: Component = field(repr=False)

    @property
    def plugin(self) -> str:
        return self.component.plugin

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "use": self.use, "plugin": self.plugin, "config": self.raw_config}


@dataclass
class Pipeline:
    """A validated pipeline: ``name``, ``seed``, resolved ``stages`` and the raw data."""

    meta: PipelineMeta
    stages: list[Stage]
    data: dict[str, Any]  # the file's content after overrides (what a run records as its config)
    source: str = "<pipeline>"

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def model(self) -> str:
        return self.meta.name

    @property
    def seed(self) -> int:
        return self.meta.seed

    @property
    def description(self) -> str:
        return self.meta.description

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)


def format_loc(loc: Iterable[Any]) -> str:
    """``("stages", 2, "config", "lr")`` → ``"stages[2].config.lr"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_errors(exc: PydanticError, prefix: str = "") -> list[str]:
    errors = []
    for err in exc.errors():
        loc = format_loc(err.get("loc", ()))
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        errors.append(f"{where}: {msg}" if where else msg)
    return errors


# ---------------------------------------------------------------------------
# overrides (--set a.b=c)
# ---------------------------------------------------------------------------




def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a copy of the file's data.

    ``pipeline.seed=3``; ``stages.<id>.config.max_steps=50`` (a stage by its id, or by
    its position ``stages.2.config...``).
    """
    data = copy.deepcopy(data)
    from llmos.sdk import split_key_value

    for item in overrides:
        key, value = split_key_value(item, what="override", option="--set", example="stages.train.config.max_steps=50")
        parts = key.split(".")
        if any(not p for p in parts):
            raise ValidationError(f"--set {item!r}: empty part in the key {key!r}")
        node: Any = data
        path = parts
        if parts[0] == "stages":
            if len(parts) < 3:
                raise ValidationError(f"--set {item!r}: address a stage setting, e.g. stages.train.config.lr=1e-3")
            stages = data.get("stages")
            if not isinstance(stages, list):
                raise ValidationError(f"--set {item!r}: the pipeline has no [[stages]]")
            node = _find_stage(stages, parts[1], item)
            path = parts[2:]
        for part in path[:-1]:
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ValidationError(f"--set {item!r}: {part!r} is not a table")
            node = nxt
        node[path[-1]] = parse_value(value)
    return data


def _find_stage(stages: list[Any], ref: str, item: str) -> dict[str, Any]:
    ids = []
    for st in stages:
        if isinstance(st, dict):
            sid = st.get("id") or (default_id(st["use"]) if isinstance(st.get("use"), str) else None)
            ids.append(sid)
            if sid == ref:
                return st
    if ref.isdigit() and int(ref) < len(stages) and isinstance(stages[int(ref)], dict):
        return stages[int(ref)]
    known = ", ".join(str(i) for i in ids if i) or "none"
    raise ValidationError(f"--set {item!r}: no stage with id {ref!r} (stages: {known})")


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def read_toml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"no pipeline file {str(path)!r}: check the path (examples are in pipelines/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read pipeline file {str(path)!r}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PipelineError(str(path), [f"invalid TOML: {exc}"]) from None


def load_pipeline(path: Path | str, overrides: Iterable[str] = (), manager: Any = None) -> Pipeline:
    """Read, override, validate and resolve the pipeline file at ``path``."""
    return validate_pipeline(read_toml(path), overrides, manager, source=str(path))


def validate_pipeline(data: dict[str, Any], overrides: Iterable[str] = (), manager: Any = None,
                      source: str = "<pipeline>") -> Pipeline:
    """Validate pipeline ``data`` (a parsed TOML document); raise :class:`PipelineError`
    listing every problem, or return the resolved :class:`Pipeline`."""
    if manager is None:
        from llmos.plugins import get_manager

        manager = get_manager()
    data = apply_overrides(data, overrides)
    try:
        parsed = PipelineFile.model_validate(data)
    except PydanticError as exc:
        raise PipelineError(source, _pydantic_errors(exc)) from None

    errors: list[str] = []
    seen: dict[str, int] = {}
    stages: list[Stage] = []
    for i, st in enumerate(parsed.stages):
        sid = st.stage_id
        if sid in seen:
            errors.append(
                f"stages[{i}].id: duplicate stage id {sid!r} (also stages[{seen[sid]}]): give one an id = \"...\""
            )
        else:
            seen[sid] = i
        if not re.match(ID_PATTERN, sid):
            errors.append(f"stages[{i}].id: invalid stage id {sid!r}: use lowercase letters, digits, '-' and '_'")
        try:
            comp = manager.get_component(st.use)
        except LlmosError as exc:
            errors.append(f"stages[{i}].use: {exc.message}")
            continue
        if comp.config is None:
            if st.config:
                errors.append(f"stages[{i}].config: {comp.ref} takes no settings, got {sorted(st.config)}")
            cfg = None
        else:
            try:
                cfg = comp.config.model_validate(st.config)
            except PydanticError as exc:
                errors.extend(_pydantic_errors(exc, prefix=f"stages[{i}].config"))
                continue
        stages.append(Stage(i, sid, st.use, cfg, st.config, comp))
    if errors:
        raise PipelineError(source, errors)
    return Pipeline(parsed.pipeline, stages, data, source)
