"""``model.load`` and ``model.register``: moving models between a run and the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmos.sdk import DATASET, LINEAGE, METRICS, MODEL, MODEL_VERSION, TEACHER, TOKENIZER, ValidationError


class LoadStep:
    """``model.load``: load a registry version (or a local directory) into the run.

    Sets ``ctx.artifacts["model"]`` and ``["tokenizer"]`` and ``["model_version"]``
    (``"name:N"``, the parent of the next registered version) — or, with
    ``as = "teacher"``, only ``ctx.artifacts["teacher"]``.
    """

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_models.build import count_parameters
        from llmos_models.io import load_ref

        cfg = self.config
        if cfg is None:
            raise ValidationError("model.load needs a 'ref': the registry reference of the model to load")
        model, tokenizer, version = load_ref(cfg.ref, manager=getattr(ctx, "manager", None))
        if cfg.as_ == "teacher":
            TEACHER.set(ctx, model)
        else:
            MODEL.set(ctx, model)
            if tokenizer is not None:
                TOKENIZER.set(ctx, tokenizer)
            if version is not None:
                MODEL_VERSION.set(ctx, version)
            else:
                MODEL_VERSION.pop(ctx)
        return {"params": float(count_parameters(model))}

    __call__ = run


class RegisterStep:
    """``model.register``: save ``ctx.artifacts["model"]`` with its tokenizer into
    ``<workdir>/<stage id>/`` and register it as a new version (metrics from
    ``ctx.artifacts["metrics"]``); optionally move an alias to it."""

    def __init__(self, config: Any = None) -> None:
        from llmos_models.config import RegisterConfig

        self.config = config if config is not None else RegisterConfig()

    def run(self, ctx: Any) -> dict[str, float]:
        from llmos_models.io import save_model

        cfg = self.config
        model = MODEL.get(ctx)
        if model is None:
            raise ValidationError("model.register needs a model: put a model or training stage before it")
        tokenizer = TOKENIZER.get(ctx)
        if tokenizer is None and DATASET.get(ctx) is not None:
            tokenizer = DATASET.get(ctx).tokenizer()
        stage_id = getattr(ctx.stage, "id", None) or "register"
        path = save_model(model, tokenizer, Path(ctx.workdir) / stage_id)
        kwargs: dict[str, Any] = {
            "metrics": dict(METRICS.get(ctx) or {}),
            "tags": dict(cfg.tags),
            "description": cfg.description,
        }
        if cfg.model:
            kwargs["model"] = cfg.model
        version = ctx.register_version(path, **kwargs)
        ref = getattr(version, "ref", None) or f"{version.model}:{version.number}"
        if cfg.alias:
            from llmos.sdk import open_registry

            open_registry().set_alias(version.model, cfg.alias, version.number)
        MODEL_VERSION.set(ctx, ref)
        LINEAGE.pop(ctx)
        return {"version": float(version.number)}

    __call__ = run
