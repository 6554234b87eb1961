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


def make_schedule(name: str, *, warmup: int = 0, total: int = 1, min_ratio: float = 0.0,
                  d_model: int | None = None) -> Schedule:
    """The schedule called ``name`` (``constant``, ``linear-warmup``, ``cosine``, ``noam``)."""
    if name == "constant":
        return constant()
    if name == "linear-warmup":
        return linear_warmup(warmup)
    if name == "cosine":
        return cosine(warmup, total, min_ratio)
    if name == "noam":
        if d_model is None:
            raise ValueError("noam needs d_model")
        return noam(d_model, warmup)
    raise ValueError(f"unknown schedule {name!r}: use constant, linear-warmup, cosine or noam")
