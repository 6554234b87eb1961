"""Components: the named, configurable things plugins provide to a stage.

A component is ``(stage, name, factory, config model, description, plugin)``.
Pipelines and commands refer to one by a *component reference*::

    model.llama                 # stage "model", component "llama"
    llmos-models:model.llama    # the same, from the plugin named "llmos-models"

The plugin prefix is only needed when two plugins provide the same name.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from llmos.errors import ValidationError

#: The six stages, in pipeline order.
STAGES: tuple[str, ...] = ("data", "model", "optimizer", "compression", "deployment", "monitoring")

#: provider hook name for each stage
STAGE_HOOKS: dict[str, str] = {
    "data": "llmos_register_data_steps",
    "model": "llmos_register_model_steps",
    "optimizer": "llmos_register_optimizer_steps",
    "compression": "llmos_register_compression_steps",
    "deployment": "llmos_register_deployment_steps",
    "monitoring": "llmos_register_monitoring_steps",
}

#: Extension kinds (what a standard stage lets plugins swap inside it), each with
#: its provider hook ``llmos_register_<kind>``. See :mod:`llmos.hookspecs`, group 2.
EXTENSION_KINDS: tuple[str, ...] = (
    "optimizers",
    "lr_schedules",
    "data_readers",
    "tokenizer_trainers",
    "architectures",
    "model_loaders",
    "eval_tasks",
    "eval_metrics",
    "quantizers",
    "export_formats",
    "serving_engines",
)
EXTENSION_HOOKS: dict[str, str] = {kind: f"llmos_register_{kind}" for kind in EXTENSION_KINDS}

#: Component and extension names (also documented in :mod:`llmos.hookspecs`).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_REF_RE = re.compile(r"^(?:(?P<plugin>[A-Za-z0-9][A-Za-z0-9._-]*):)?(?P<stage>[a-z]+)\.(?P<name>[a-z0-9][a-z0-9_-]*)$")


@dataclass(frozen=True)
class ComponentRef:
    """A parsed component reference ``[plugin:]stage.name``."""

    stage: str
    name: str
    plugin: str | None = None

    @classmethod
    def parse(cls, text: str) -> ComponentRef:
        m = _REF_RE.match(text.strip())
        if not m:
            raise ValidationError(
                f"invalid component reference {text!r}: write 'stage.name' "
                f"(e.g. 'model.llama') or 'plugin:stage.name'"
            )
        stage = m.group("stage")
        if stage not in STAGES:
            raise ValidationError(
                f"unknown stage {stage!r} in {text!r}: use one of {', '.join(STAGES)}"
            )
        return cls(stage=stage, name=m.group("name"), plugin=m.group("plugin"))

    def __str__(self) -> str:
        prefix = f"{self.plugin}:" if self.plugin else ""
        return f"{prefix}{self.stage}.{self.name}"


@dataclass
class Component:
    """A component provided by a plugin.

    :ivar stage: one of :data:`STAGES`.
    :ivar name: unique within its stage (per plugin).
    :ivar factory: callable ``factory(config)`` (``config`` is ``None`` for a component
        without a config model) or ``"module:attr"`` (imported on use).
    :ivar config: pydantic model class for its settings, or ``None``.
    :ivar description: one line.
    :ivar plugin: name of the plugin that registered it.
    """

    stage: str
    name: str
    factory: Any
    config: Any = None
    description: str = ""
    plugin: str = "?"
    _loaded: Any = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.stage}.{self.name}"

    @property
    def qualified_ref(self) -> str:
        return f"{self.plugin}:{self.stage}.{self.name}"

    def load_factory(self) -> Any:
        """Import (once) and return the factory callable."""
        if self._loaded is None:
            self._loaded = import_object(self.factory) if isinstance(self.factory, str) else self.factory
        return self._loaded

    def validate_config(self, data: Any = None) -> Any:
        """Validate ``data`` (a mapping, a config instance or ``None``) against the
        component's config model; raise :class:`ValidationError` with every problem
        and its location on failure."""
        if self.config is None:
            if data:
                raise ValidationError(f"component {self.ref} takes no settings, got {sorted(dict(data))}")
            return None
        if isinstance(data, self.config):
            return data
        import pydantic

        try:
            return self.config.model_validate(dict(data or {}))
        except pydantic.ValidationError as exc:
            raise ValidationError(format_validation_error(exc, prefix=self.ref)) from exc

    def create(self, config: Any = None) -> Any:
        """Validate ``config`` and call the factory with it."""
        cfg = self.validate_config(config)
        factory = self.load_factory()
        return factory(cfg)

    def config_fields(self) -> list[dict[str, Any]]:
        """Describe the config model's fields (name, type, default, description)."""
        if self.config is None:
            return []
        out = []
        for fname, finfo in self.config.model_fields.items():
            required = finfo.is_required()
            default = None if required else finfo.get_default(call_default_factory=True)
            ann = finfo.annotation
            type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
            out.append(
                {
                    "name": fname,
                    "type": type_name,
                    "required": required,
                    "default": jsonable(default),
                    "description": finfo.description or "",
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "stage": self.stage,
            "name": self.name,
            "plugin": self.plugin,
            "description": self.description,
            "config": self.config_fields(),
        }


@dataclass
class Extension(Component):
    """An extension registered by a plugin through an ``llmos_register_<kind>`` hook.

    Same fields as :class:`Component`, with ``stage`` holding the extension kind
    (one of :data:`EXTENSION_KINDS`) and ``extra`` the kind-specific keywords
    given to ``register`` (``presets`` for architectures). Stages call
    ``load_factory()`` with the arguments their kind documents.
    """

    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.stage

    @property
    def ref(self) -> str:
        return f"{self.stage}.{self.name}"

    @property
    def qualified_ref(self) -> str:
        return f"{self.plugin}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "ref": self.ref,
            "kind": self.stage,
            "name": self.name,
            "plugin": self.plugin,
            "factory": self.factory if isinstance(self.factory, str) else _callable_name(self.factory),
            "description": self.description,
            "config": self.config_fields(),
        }
        if self.extra:
            out.update(jsonable(self.extra))
        return out


def _callable_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: NaN/inf and unknown objects as strings, tensors and
    numpy scalars by ``.item()``, pydantic models by ``model_dump``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def format_validation_error(exc: Any, prefix: str = "") -> str:
    """Turn a pydantic ValidationError into ``loc: message`` lines joined by '; '."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        where = ".".join(p for p in (prefix, loc) if p)
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts)


def import_object(spec: str) -> Any:
    """Import ``"package.module:attr.sub"`` and return the object."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValidationError(f"invalid import path {spec!r}: write 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
