"""Learning-rate schedules as ``LambdaLR`` multipliers.

Every function here returns ``f(i) -> float`` where ``i`` is the number of optimizer
updates already done (``LambdaLR``'s ``last_epoch``: 0 for the first update), so
the update number is ``step = i + 1``. The learning rate of update ``step`` is
``base_lr · f(step - 1)``.

- ``constant``:       1
- ``linear_warmup``:  ``min(1, step / warmup)``
- ``cosine``:         linear warmup, then ``r + (1 - r) · ½(1 + cos(π · p))`` where
  ``p = (step - warmup) / (total - warmup)`` goes from 0 to 1 and ``r`` is ``min_ratio``
- ``noam``:           ``d_model^-0.5 · min(step^-0.5, step · warmup^-1.5)``
  (Vaswani et al. 2017; ``base_lr`` is then a scale factor, 1.0 for the paper's schedule)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Schedule = Callable[[int], float]


def constant() -> Schedule:
    def f(i: int) -> float:
        return 1.0

    return f


def linear_warmup(warmup: int) -> Schedule:
    def f(i: int) -> float:
        step = i + 1
        return 1.0 if warmup <= 0 else min(1.0, step / warmup)

    return f


def cosine(warmup: int, total: int, min_ratio: float = 0.0) -> Schedule:
    span = max(1, total - warmup)

    def f(i: int) -> float:
        step = i + 1
        if warmup > 0 and step <= warmup:
            return step / warmup
        p = min(1.0, (step - warmup) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))

    return f


def noam(d_model: int, warmup: int) -> Schedule:
    if d_model < 1 or warmup < 1:
        raise ValueError("noam needs d_model ≥ 1 and warmup ≥ 1")

    def f(i: int) -> float:
        step = i + 1
        return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)

    return f


# -- the factories llmos-train registers (llmos_register_lr_schedules) ------------------------
# factory(config, *, warmup, total[, model_width]) -> f


def constant_schedule(config: Any, **_: Any) -> Schedule:
    return constant()


def linear_warmup_schedule(config: Any, *, warmup: int, **_: Any) -> Schedule:
    return linear_warmup(warmup)


def cosine_schedule(config: Any, *, warmup: int, total: int, **_: Any) -> Schedule:
    return cosine(warmup, total, config.min_lr_ratio)


def noam_schedule(config: Any, *, warmup: int, model_width: int | None = None, **_: Any) -> Schedule:
    d_model = config.d_model or model_width
    if d_model is None:
        raise ValueError("schedule 'noam' needs d_model: the model's config has no hidden size, "
                         "set schedule_config = { d_model = ... }")
    return noam(d_model, warmup)


def _accepts(fn: Any, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def make_schedule(name: str, *, warmup: int = 0, total: int = 1, settings: dict[str, Any] | None = None,
                  model_width: int | None = None) -> Schedule:
    """The registered schedule ``name`` (``settings``: its ``schedule_config``), looked up
    through the plugin manager. Its factory is called as ``factory(config, warmup=,
    total=)``, plus ``model_width=`` (the model's hidden size) when it accepts it."""
    from llmos_train.extensions import SCHEDULES, lookup, settings as checked

    ext = lookup(SCHEDULES, name)
    cfg = checked(ext, settings, {"warmup": warmup, "total": total})
    factory = ext.load_factory()
    extra = {"model_width": model_width} if _accepts(factory, "model_width") else {}
    fn = factory(cfg, warmup=warmup, total=total, **extra)
    if not callable(fn):
        raise TypeError(f"schedule {name!r} (plugin {ext.plugin}) returned {type(fn).__name__}, not f(step) -> float")
    return fn
