"""``deployment.promote``: move an alias to the version a run registered, if it earned it.

::

    [[stages]]
    id = "promote"
    use = "deployment.promote"
    [stages.config]
    to = "production"
    require = "val_ppl <= current.val_ppl"   # current = the alias's version now

A refused promotion is an outcome, not a failure: the stage returns
``{"promoted": false, "reason": ...}`` and the run goes on (``fail_on_refusal = true``
makes it fail the run instead). Either way the decision is a registry event.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PromoteConfig(BaseModel):
    """Settings of ``deployment.promote``."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field("production", description="Alias to move.")
    require: str | None = Field(
        None, description="Rule the version must meet, e.g. 'val_ppl <= current.val_ppl' (none: always promote)."
    )
    source: str = Field("", description="Version to promote (empty: the one this run registered last).")
    fail_on_refusal: bool = Field(False, description="Fail the run when the rule refuses the promotion.")

    @field_validator("require")
    @classmethod
    def _rule(cls, v: str | None) -> str | None:
        if v is not None:
            from llmos.sdk import LlmosError

            from llmos_serve.rules import parse

            try:
                parse(v)
            except LlmosError as exc:  # reported with the stage's location, before the run starts
                raise ValueError(exc.message) from None
        return v


class PromoteStep:
    def __init__(self, config: PromoteConfig) -> None:
        self.config = config

    def run(self, ctx: Any) -> dict[str, Any]:
        from llmos.sdk import MODEL_VERSION
        from llmos.sdk import ValidationError

        from llmos_serve.deploy import PromotionRefused, promote

        source = self.config.source or MODEL_VERSION.get(ctx)
        if not source:
            raise ValidationError("deployment.promote: no version to promote: put it after a stage that "
                                  "registers one (model.register), or set source = 'name:N'")
        registry = getattr(getattr(ctx, "_metric_writer", None), "reg", None)
        try:
            result = promote(str(source), self.config.to, registry, require=self.config.require)
        except PromotionRefused as exc:
            if self.config.fail_on_refusal:
                raise
            print(f"deployment.promote: {exc.message}", flush=True)
            return {"promoted": False, "version": str(source), "reason": exc.message}
        return {"promoted": True, "version": f"{result['model']}:{result['version']}",
                "alias": self.config.to, "previous": result["previous"]}
